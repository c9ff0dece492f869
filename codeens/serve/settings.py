"""How `codeens serve` listens and how much work it takes on: one pydantic model, from which
the command's options take their types, limits, defaults and help."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

LOOPBACK = "127.0.0.1"


class ServeSettings(BaseModel):
    """The server's own settings (the models and strategies come from the config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(
        LOOPBACK, description="Address to bind; any other than 127.0.0.1 needs a key."
    )
    port: int = Field(8000, ge=0, le=65535, description="Port (0: any free port).")
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key clients must send."
    )
    max_concurrent: int = Field(2, ge=1, le=64, description="Requests worked on at once.")
    queue: int = Field(8, ge=0, le=10_000, description="Requests waiting beyond those; then 429.")
    deadline_s: float = Field(
        120.0, gt=0, le=86_400, description="Seconds a request may take, queue included."
    )
    max_body_bytes: int = Field(
        1 << 20, ge=1024, le=1 << 30, description="Largest request body; larger ones get 413."
    )
    max_n: int = Field(8, ge=1, le=128, description="Largest n (choices) a request may ask.")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_key(settings: ServeSettings, environ: Mapping[str, str] = os.environ) -> str | None:
    """The key clients must send, or None when the server is open to this machine only.

    Raises ValueError (one line) when the settings would expose the ensemble to the network
    without a key: a bind beyond loopback needs ``api_key_env`` naming a set variable.
    """
    name = settings.api_key_env
    if name is None:
        if not is_loopback(settings.host):
            raise ValueError(
                f"binding {settings.host} opens the server to the network: give "
                "--api-key-env NAME with the key in that environment variable"
            )
        return None
    key = environ.get(name, "").strip()
    if not key:
        raise ValueError(f"--api-key-env {name}: the environment variable {name} is not set")
    return key
