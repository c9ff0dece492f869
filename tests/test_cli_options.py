"""Command-line options that come from the config models and the registries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from codeens.cli import COMMANDS, cli
from codeens.config import Config, SandboxConfig
from codeens.strategies.base import STRATEGIES
from codeens.strategies.vote import Vote
from conftest import run_cli


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def every_command() -> list[tuple[str, click.Command]]:
    found = []
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        subcommands = command.commands if isinstance(command, click.Group) else {}
        found += [(name, command)]
        found += [(f"{name} {sub}", c) for sub, c in subcommands.items()]
    return found


def test_top_level_help_imports_no_config_model(tmp_path: Path) -> None:
    code = (
        "import sys, contextlib\nimport codeens.cli\n"
        "with contextlib.suppress(SystemExit):\n    codeens.cli.main(['--help'])\n"
        "print(sorted(m for m in ('pydantic', 'codeens.config') if m in sys.modules))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert run.stdout.splitlines()[-1] == "[]"


@pytest.mark.parametrize("command", ["solve", "eval", "precommit"])
def test_samples_has_the_limits_of_the_config_field(command: str) -> None:
    field = Config.model_fields["samples"]
    low = next(m.ge for m in field.metadata if hasattr(m, "ge"))
    high = next(m.le for m in field.metadata if hasattr(m, "le"))
    extra = ["problem.py"] if command == "solve" else []
    for bad in (low - 1, high + 1):
        code, output = invoke(command, *extra, "--samples", str(bad))
        assert code == 2 and f"{low}<=x<={high}" in output, output
    code, output = invoke(command, "--help")
    assert f"(default from config: {field.default})" in output


def test_sandbox_run_defaults_are_the_config_defaults() -> None:
    code, output = invoke("sandbox", "run", "--help")
    defaults = SandboxConfig()
    assert code == 0
    for option, value in (
        ("--timeout", defaults.timeout),
        ("--memory", defaults.memory_mb),
        ("--workers", defaults.workers),
    ):
        line = " ".join(output.split(option, 1)[1].split("--", 1)[0].split())
        assert f"default: {value};" in line, line


def test_help_lists_what_is_registered_now() -> None:
    with STRATEGIES.registered("zztestvote", Vote):
        _, output = invoke("solve", "--help")
        assert "zztestvote" in output
    _, output = invoke("solve", "--help")
    assert "zztestvote" not in output
    assert all(name in " ".join(output.split()) for name in STRATEGIES.names())
    _, output = invoke("eval", "--help")
    assert "humaneval, mbpp" in output


def test_shared_options_are_one_declaration() -> None:
    """--db, --config, --json and --quiet mean the same wherever a command has them."""
    seen: dict[str, set[str]] = {}
    for name, command in every_command():
        for param in command.params:
            for opt in set(param.opts) & {"--db", "--config", "--json", "--quiet"}:
                seen.setdefault(opt, set()).add(name)
                expected = {"--db": "db", "--config": "config_path", "--json": "as_json"}
                assert param.name == expected.get(opt, "quiet"), (name, opt)
                if opt in ("--db", "--config"):
                    assert isinstance(param.type, click.Path) and param.default is None
                else:
                    assert isinstance(param, click.Option) and param.is_flag
    assert len(seen["--db"]) == 13 and len(seen["--config"]) == 8


def test_overrides_reach_the_config_and_fail_in_one_line(tmp_path: Path) -> None:
    proc = run_cli("solve", "missing.py", "--backend", "dockr", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "Error: unknown sandbox backend 'dockr' (known: docker, process); did you mean 'docker'?"
    ]
    proc = run_cli("eval", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "Error: give a BENCHMARK (humaneval or mbpp) or --resume RUN_ID"


def test_image_is_an_option_of_the_docker_backend_only(tmp_path: Path) -> None:
    (tmp_path / "c.py").write_text("def f():\n    return 1\n")
    (tmp_path / "t.py").write_text("assert f() == 1\n")
    args = ("sandbox", "run", "c.py", "--tests", "t.py", "--backend", "process")
    proc = run_cli(*args, "--image", "x:1", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--image" in proc.stderr and "unknown key 'image'" in proc.stderr


def test_eval_tables_keep_long_names_on_one_aligned_row(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from codeens.commands.eval import print_tables

    long_name = "qwen2.5-coder-1.5b-instruct-q4_k_m-local-copy"
    model = {"pass@1": 0.5, "pass@1_ci": [0.25, 0.75], "codebleu": None, "codebertscore_f1": 0.8}
    strategy = {
        "pass@1": 2 / 3, "pass@1_ci": [1 / 3, 1.0], "oracle": 2 / 3, "selection_efficiency": 1.0,
        "tokens": 12345, "cost": 0.000123, "latency_p50_s": None, "latency_p95_s": 2.5,
    }  # fmt: skip
    summary = {
        "benchmark": "mbpp", "split": "test", "problems_done": 3, "problems_total": 3,
        "samples": 4, "oracle": 2 / 3, "models": {long_name: model, "tiny": model},
        "strategies": {"vote": strategy},
    }  # fmt: skip
    print_tables(summary)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "mbpp test: 3 of 3 problems, 4 samples per model, oracle 66.7%"
    header, rows = lines[1], [line for line in lines if line.startswith((long_name, "tiny"))]
    assert len(rows) == 2 and rows[0].split()[1:] == ["50.0", "25.0-75.0", "-", "0.800"]
    end = header.index("pass@1") + len("pass@1")
    assert [row.index("50.0") + len("50.0") for row in rows] == [end, end]  # right-aligned
    strategy_row = next(line for line in lines if line.startswith("vote"))
    assert strategy_row.split()[1:] == [
        "66.7", "33.3-100.0", "66.7", "100.0", "12345", "0.000123", "-", "2.50",
    ]  # fmt: skip
