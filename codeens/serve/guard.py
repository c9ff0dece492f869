"""What a request must pass before any work: the API key and the body size limit."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from codeens.serve.errors import ApiError


def check_key(request: Request, key: str | None) -> None:
    """ApiError 401 unless the request carries ``Authorization: Bearer <key>`` (no key
    configured: every request passes)."""
    if key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "missing API key: send Authorization: Bearer <key>",
            code="invalid_api_key",
        )
    if not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise ApiError(401, "incorrect API key", code="invalid_api_key")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read no further than ``limit`` bytes; ApiError 413 beyond."""
    too_large = ApiError(
        413, f"the request body is larger than {limit} bytes", code="request_too_large"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise too_large
    return bytes(data)
