"""Errors the sandbox raises to its callers."""


class SandboxInputError(Exception):
    """The user gave something that cannot be run (missing file, not Python, no tests)."""


class SandboxUnavailable(Exception):
    """The sandbox itself cannot work here (no engine, no image); a one-line reason."""
