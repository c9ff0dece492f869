"""The `codeens serve` command itself: what it refuses before binding, and a real server
process answering the official client until Ctrl-C."""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest
from serve_fixtures import chat_prompt, client, replay, write_config

from conftest import CODEENS, run_cli

HELLO = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--host", "0.0.0.0"], "binding 0.0.0.0 opens the server to the network"),
        (["--host", "192.168.1.10"], "--api-key-env NAME"),
        (["--api-key-env", "CODEENS_TEST_UNSET_KEY"], "CODEENS_TEST_UNSET_KEY is not set"),
        (["--queue", "-1"], "--queue"),
        (["--config", "missing.toml"], "config missing.toml: no such file"),
    ],
)
def test_refusals_are_one_line_and_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    proc = run_cli("serve", *args, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_help_lists_the_options_without_loading_the_server() -> None:
    probe = (
        "import sys\nfrom click.testing import CliRunner\nfrom codeens.cli import cli\n"
        "result = CliRunner().invoke(cli, ['serve', '--help'])\n"
        "print(result.output)\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'torch', 'docker') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd="/"
    )
    for option in ("--host", "--port", "--api-key-env", "--max-concurrent", "--queue",
                   "--deadline-s", "--max-body-bytes", "--config", "--db"):  # fmt: skip
        assert option in proc.stdout
    assert "default: 127.0.0.1" in proc.stdout.replace("\n", " ").replace("  ", " ")
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_the_command_serves_until_interrupted(tmp_path: Path) -> None:
    replay(tmp_path, "alpha", chat_prompt(HELLO), ["hi there"])
    config = write_config(tmp_path)
    db = tmp_path / "log.db"
    env = dict(os.environ, SERVE_KEY="k-123")
    server = subprocess.Popen(
        [str(CODEENS), "serve", "--port", "0", "--config", str(config), "--db", str(db),
         "--api-key-env", "SERVE_KEY"],
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(x) for x in server.stderr or []], daemon=True
    ).start()
    try:
        url, deadline = "", time.monotonic() + 60
        while not url and time.monotonic() < deadline:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line.startswith("codeens serve: http://127.0.0.1:"):
                url = line.split()[2].removesuffix("/v1")
        assert "members: alpha, beta; strategy vote" in line
        with pytest.raises(openai.AuthenticationError):
            client(url).models.list()
        reply = client(url, key="k-123").chat.completions.create(model="alpha", messages=HELLO)  # type: ignore[arg-type]
    finally:
        server.send_signal(signal.SIGINT)
        code = server.wait(timeout=60)
    assert reply.choices[0].message.content == "hi there"
    assert code == 0
    rest = "".join(iter(lambda: lines.get(timeout=5), "codeens serve: stopped\n"))
    assert "Application shutdown complete" in rest and "Traceback" not in rest
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT kind, status FROM runs").fetchall() == [("serve", "unverified")]
