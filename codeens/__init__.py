"""codeens: a code-generation ensemble agent with sandboxed verification."""

__version__ = "0.1.0"
