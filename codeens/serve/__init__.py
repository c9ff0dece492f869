"""`codeens serve`: the ensemble behind an OpenAI-compatible HTTP API."""
