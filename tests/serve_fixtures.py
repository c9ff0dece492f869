"""Helpers for the `codeens serve` tests: replay members, a config, a live server."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from openai import OpenAI

from codeens.config import load_config
from codeens.models.base import Completion
from codeens.models.replay import record
from codeens.problem import parse_problem
from codeens.prompts import solve_prompt
from codeens.serve.app import create_app
from codeens.serve.chat import aggregate_prompt, conversation_prompt
from codeens.serve.engine import Engine
from codeens.serve.server import running
from codeens.serve.settings import ServeSettings
from codeens.storage import Store
from conftest import REPO

ADD = (REPO / "examples" / "problems" / "add.py").read_text()
CORRECT = "Here you go:\n```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```\n"
CORRECT_OTHER = "```python\ndef add(a, b):\n    return sum((a, b))\n```"
WRONG_MINUS = "```python\ndef add(a, b):\n    return a - b\n```"
WRONG_TIMES = "```python\ndef add(a, b):\n    return a * b\n```"
HANGS = "```python\ndef add(a, b):\n    while True:\n        pass\n```"
PROSE = "I am sorry, I cannot help with that."
# Cheapest first: cascade answers chat with alpha, MoA aggregates with beta.
PRICES = {"alpha": 1.0, "beta": 2.0}


def stub_prompt(source: str = ADD) -> str:
    """The prompt text the members get for the stub in ``source``."""
    problem = parse_problem(source, Path("request.py"))
    stub = problem.stubs[0]
    return solve_prompt(problem, stub, problem.tests_for(stub.name)).text_for(True)


def chat_prompt(messages: Sequence[dict[str, str]], answers: Sequence[str] | None = None) -> str:
    """The prompt text of plain chat (with ``answers``: the MoA aggregator's)."""
    if answers is None:
        return conversation_prompt(messages).text_for(True)
    return aggregate_prompt(messages, answers).text_for(True)


def replay(tmp: Path, model: str, prompt_text: str, outputs: Sequence[str], seed: int = 0) -> Path:
    """Append ``outputs`` to ``model``'s recording (seeds ``seed, seed+1, ...``)."""
    path = tmp / f"{model}.jsonl"
    for i, text in enumerate(outputs):
        record(path, model, prompt_text, seed + i, Completion(text, 40, 10 + i))
    return path


def write_config(
    tmp: Path, strategy: str = "vote", backend: str = "process", timeout: float = 3.0
) -> Path:
    """Members alpha and beta replaying ``tmp/<name>.jsonl``."""
    lines = [
        f'strategy = "{strategy}"\nsamples = 4\n\n[sandbox]\nbackend = "{backend}"\n'
        f"timeout = {timeout}\nworkers = 2\n"
    ]
    for name, price in PRICES.items():
        lines.append(
            f'[[models]]\nname = "{name}"\nbackend = "replay"\n'
            f'location = "{tmp / (name + ".jsonl")}"\nprice_output_per_mtok = {price}\n'
        )
    path = tmp / "codeens.toml"
    path.write_text("\n".join(lines))
    return path


@contextmanager
def serving(
    config_path: Path, db: Path, key: str | None = None, **settings: Any
) -> Iterator[tuple[str, Store]]:
    """The real app under uvicorn on 127.0.0.1 (an ephemeral port): its URL and log."""
    config = load_config(config_path)[0]
    store = Store(db)
    with config.sandbox.open() as sandbox:
        engine = Engine(config, store, sandbox)
        try:
            app = create_app(engine, ServeSettings(**settings), key)
            with running(app) as url:
                yield url, store
        finally:
            engine.close()


def client(url: str, key: str = "unused", **options: Any) -> OpenAI:
    """The official client, without its automatic retries (a 429 must show)."""
    return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, **options)


def run_function(content: str, name: str) -> Any:
    """The function ``name`` from the first fenced Python block of ``content``."""
    body = content.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(body, "<answer>", "exec"), namespace)
    return namespace[name]
