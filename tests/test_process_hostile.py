"""Hostile programs through the process backend as root: each probe must be contained.

The defects these cases pin down were found by running hostile programs through
``--backend process`` as root (issue 19): candidates read host secrets, deleted host
files, read a concurrent run's files, reached the host's network, and left processes and
files behind. Each test names where its program comes from.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import pytest

from codeens.sandbox.backends.base import Candidate, Sandbox
from codeens.sandbox.backends.confine import kill_uid
from codeens.sandbox.backends.process import PRIVATE_DIRS, ProcessSandbox, host_warning
from codeens.sandbox.results import ExecutionResult, Limits
from codeens.sandbox.testfile import parse_test_suite
from conftest import run_cli

needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="uid switch, namespaces and private mounts need root; not root here",
)
pytestmark = needs_root

ADD_TEST = "assert add(2, 3) == 5\n"
BLOCKED = "assert probe() == 'blocked'\n"


@pytest.fixture(scope="module")
def box() -> Iterator[ProcessSandbox]:
    sandbox = ProcessSandbox(Limits(timeout=6.0, memory_mb=256), workers=2)
    yield sandbox
    sandbox.close()


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A root-owned, world-traversable host directory outside every private tmpfs."""
    path = Path("/var/lib") / f"codeens-test-{uuid.uuid4().hex[:8]}"
    path.mkdir(mode=0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _run(box: Sandbox, source: str, tests: str) -> ExecutionResult:
    return box.run(Candidate("hostile.py", source), parse_test_suite(tests))


def _probe(body: str) -> str:
    """A candidate whose probe() returns 'blocked' unless ``body`` succeeds."""
    indented = "\n".join("        " + line for line in body.strip().splitlines())
    return f"def probe():\n    try:\n{indented}\n    except Exception:\n        return 'blocked'\n"


@pytest.fixture(scope="module")
def namespaces() -> None:
    """Skip where the kernel refuses new mount and network namespaces (no CAP_SYS_ADMIN in
    a container, say): the process backend then reports those steps as not done."""
    probe = "import ctypes, sys\nsys.exit(ctypes.CDLL(None).unshare(0x40020000) != 0)"
    done = subprocess.run([sys.executable, "-c", probe], check=False)  # NEWNS | NEWNET
    if done.returncode != 0:
        pytest.skip("this kernel refuses new mount and network namespaces")


def _slot_uid(result: ExecutionResult) -> int:
    found = re.search(r"\buid (\d+)", result.isolation)
    assert found, result.isolation
    return int(found.group(1))


def _live_pids(match: Callable[[str, bytes], bool]) -> list[int]:
    """Host pids, zombies aside, whose /proc status and cmdline satisfy ``match``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if "\nState:\tZ" not in status and match(status, cmdline):
            found.append(int(name))
    return found


def _eventually_none(match: Callable[[str, bytes], bool], seconds: float = 3.0) -> list[int]:
    """Poll until no live process matches (the kernel tears namespaces down asynchronously)."""
    deadline = time.monotonic() + seconds
    while (pids := _live_pids(match)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


# ------------------------------------------------------------------------- host files


def test_root_secret_outside_the_workdir_is_unreadable(box: ProcessSandbox, host_dir: Path) -> None:
    # issue 19 (read a host secret file, mode 0600, root); codejail tests (reading files)
    secret = host_dir / "secret.txt"
    secret.write_text("host-secret-7c1e")
    secret.chmod(0o600)
    source = f"import os\nSEEN = os.path.exists({str(secret)!r})\n" + _probe(
        f"return open({str(secret)!r}).read()"
    )
    result = _run(box, source, BLOCKED + "assert SEEN\n")
    assert result.verdict == "passed", (result.message, result.tests)


def test_etc_shadow_is_unreadable(box: ProcessSandbox) -> None:
    # issue 19; codejail tests (reading /etc/shadow as the sandbox user)
    if not os.path.exists("/etc/shadow"):
        pytest.skip("no /etc/shadow on this host")
    result = _run(box, _probe("return open('/etc/shadow').read()[:10]"), BLOCKED)
    assert result.verdict == "passed", (result.message, result.tests)


def test_deleting_a_root_owned_host_file_fails(box: ProcessSandbox, host_dir: Path) -> None:
    # bigcode-evaluation-harness evil programs (os.remove / shutil.rmtree); issue 19
    victim = host_dir / "keep.txt"
    victim.write_text("keep me")
    source = _probe(
        f"import os, shutil\nos.remove({str(victim)!r})\n"
        f"shutil.rmtree({str(host_dir)!r})\nreturn 'deleted'"
    )
    result = _run(box, source, BLOCKED)
    assert result.verdict == "passed", (result.message, result.tests)
    assert victim.read_text() == "keep me"


# --------------------------------------------------------------------- other runs


def test_a_concurrent_run_cannot_read_another_runs_files(box: ProcessSandbox) -> None:
    # issue 19 (read a concurrent candidate's files in the sibling codeens-run-* directory)
    marker = f"codeens-marker-{uuid.uuid4().hex[:8]}"
    writer = (
        "import os, time\n"
        f"with open({marker!r}, 'w') as f:\n    f.write('private')\n"
        "def add(a, b):\n    time.sleep(3)\n    return a + b\n"
    )
    reader = _probe(
        "import glob, os\n"
        f"names = [{marker!r}, '/tmp/*/{marker}', '/var/tmp/*/{marker}', '/dev/shm/{marker}']\n"
        f"names += ['/proc/*/root/tmp/work/{marker}', '/proc/*/cwd/{marker}']\n"
        "hits = [p for n in names for p in glob.glob(n)]\n"
        "return open(hits[0]).read() if hits else 'blocked'"
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(_run, box, writer, ADD_TEST)
        _wait_for_marker(marker)  # the writer's file exists now, in its private /tmp
        second = _run(box, reader, BLOCKED)
        written = first.result()
    assert written.verdict == "passed", (written.message, written.tests)
    assert second.verdict == "passed", (second.message, second.tests)
    assert _slot_uid(written) != _slot_uid(second)


def _wait_for_marker(marker: str) -> None:
    """Root on the host sees each run's private /tmp through /proc/PID/root."""
    deadline = time.monotonic() + 5
    while not glob.glob(f"/proc/[0-9]*/root/tmp/work/{marker}"):
        assert time.monotonic() < deadline, "the writer never wrote its file"
        time.sleep(0.02)


def test_two_sandboxes_never_share_a_uid() -> None:
    # issue 19: slot uids are reserved per host, so two codeens processes cannot collide
    first = ProcessSandbox(Limits(timeout=3.0), workers=1)
    second = ProcessSandbox(Limits(timeout=3.0), workers=1)
    try:
        uids = {
            _slot_uid(_run(b, "def add(a, b):\n    return a + b\n", ADD_TEST))
            for b in (first, second)
        }
    finally:
        first.close()
        second.close()
    assert len(uids) == 2


# ------------------------------------------------------------------------- network


@pytest.fixture
def server() -> Iterator[int]:
    """A real TCP server on every host address; its port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("0.0.0.0", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


def _host_addresses() -> list[str]:
    """127.0.0.1, the Docker bridge and this host's own IPv4 addresses (from fib_trie)."""
    found = ["127.0.0.1", "172.17.0.1"]
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
    except OSError:
        return found
    for before, line in pairwise(lines):
        if "/32 host LOCAL" in line:
            address = before.split()[-1]
            if address not in found:
                found.append(address)
    return found


def _reachable(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.usefixtures("namespaces")
def test_no_host_address_is_reachable(box: ProcessSandbox, server: int) -> None:
    # issue 19 (reached 127.0.0.1, the Docker bridge 172.17.0.1 and other addresses);
    # piston tests (network access from a submission)
    targets = [(a, server) for a in _host_addresses()] + [("172.17.0.1", 2375)]
    assert _reachable("127.0.0.1", server), "the test server does not answer on the host"
    source = (
        "import socket\n"
        f"TARGETS = {targets!r}\n"
        "def reached():\n    out = []\n    for target in TARGETS:\n"
        "        try:\n            socket.create_connection(target, timeout=1).close()\n"
        "            out.append(target)\n        except OSError:\n            pass\n"
        "    return out\n"
    )
    result = _run(box, source, "assert reached() == []\n")
    assert result.verdict == "passed", (result.message, result.tests)


# ----------------------------------------------------------------------- processes


def test_fork_bomb_fails_and_leaves_no_process(box: ProcessSandbox) -> None:
    # bigcode-evaluation-harness evil programs (fork bomb); human-eval reliability_guard
    source = "import os\ndef add(a, b):\n    while True:\n        os.fork()\n"
    result = _run(box, source, ADD_TEST)
    assert result.verdict == "failed", (result.message, result.tests)
    assert "process limit reached" in result.message
    uid = _slot_uid(result)
    assert _eventually_none(lambda status, _cmd: _real_uid(status) == uid) == []


def _real_uid(status: str) -> int:
    found = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
    return int(found.group(1)) if found else -1


def test_the_uid_sweep_kills_processes_in_their_own_sessions() -> None:
    # issue 19: what a candidate started in a new session is stopped by its uid, not group
    uid = 1_989_998  # below the slot range: no sandbox run uses it
    sleepers = [
        subprocess.Popen(
            ["sleep", "30"], user=uid, group=uid, extra_groups=[], start_new_session=True
        )
        for _ in range(3)
    ]
    try:
        assert len(_live_pids(lambda status, _cmd: _real_uid(status) == uid)) == 3
        kill_uid(uid)
        assert [proc.wait(timeout=5) for proc in sleepers] == [-9, -9, -9]
    finally:
        for proc in sleepers:
            proc.kill()
            proc.wait()


SLEEPERS = {
    # issue 19: a forked child that starts its own session survives a process-group kill
    "issue 19: fork, setsid, exec sleep": (
        "import os\nif os.fork() == 0:\n    os.setsid()\n"
        "    os.execvp('sleep', ['sleep', '{arg}'])\n"
    ),
    # issue 19; piston tests (background processes outliving the submission)
    "issue 19: Popen start_new_session": (
        "import subprocess\nsubprocess.Popen(['sleep', '{arg}'], start_new_session=True)\n"
    ),
}


@pytest.mark.parametrize("name", list(SLEEPERS))
def test_new_sessions_do_not_survive_the_run(box: ProcessSandbox, name: str) -> None:
    # sleep 977 plus a unique fraction, so other suites' sleepers are not counted
    arg = f"977.{uuid.uuid4().int % 10**6:06d}"
    source = SLEEPERS[name].format(arg=arg) + "def add(a, b):\n    return a + b\n"
    result = _run(box, source, ADD_TEST)
    assert result.verdict == "passed", (result.message, result.tests)
    wanted = b"sleep\0" + arg.encode() + b"\0"
    assert _eventually_none(lambda _status, cmd: cmd == wanted) == []


def test_killing_the_parent_and_hanging_leaves_no_process() -> None:
    # issue 19 (os.kill of the driver, then hang, with a setsid'd sleeper started first)
    arg = f"977.{uuid.uuid4().int % 10**6:06d}"
    source = (
        "import os, signal, time\n"
        f"if os.fork() == 0:\n    os.setsid()\n    os.execvp('sleep', ['sleep', '{arg}'])\n"
        "def add(a, b):\n    try:\n        os.kill(os.getppid(), signal.SIGKILL)\n"
        "    except OSError:\n        pass\n    time.sleep(60)\n"
    )
    with ProcessSandbox(Limits(timeout=1.5), workers=1) as short:
        result = _run(short, source, ADD_TEST)
    assert result.verdict in ("timeout", "failed"), (result.message, result.tests)
    wanted = b"sleep\0" + arg.encode() + b"\0"
    assert _eventually_none(lambda _status, cmd: cmd == wanted) == []


# -------------------------------------------------------------------------- files


@pytest.mark.usefixtures("namespaces")
def test_files_in_shared_temporary_directories_stay_inside(box: ProcessSandbox) -> None:
    # issue 19 (files written in /dev/shm, /run/lock, /tmp, /var/tmp stayed on the host)
    name = f"codeens-left-{uuid.uuid4().hex[:8]}"
    dirs = [d for d in PRIVATE_DIRS if os.path.isdir(d)]
    source = (
        f"DIRS = {dirs!r}\n"
        "def written():\n    out = []\n    for d in DIRS:\n"
        f"        with open(d + '/{name}', 'w') as f:\n            f.write('left')\n"
        "        out.append(d)\n    return out\n"
    )
    result = _run(box, source, f"assert written() == {dirs!r}\n")
    assert result.verdict == "passed", (result.message, result.tests)
    assert [d for d in dirs if os.path.exists(f"{d}/{name}")] == []


# -------------------------------------------------------------------- reporting


def test_isolation_says_what_held(box: ProcessSandbox) -> None:
    # codeens: every result says what the process backend contained
    result = _run(box, "def add(a, b):\n    return a + b\n", ADD_TEST)
    assert result.verdict == "passed"
    text = result.isolation
    assert text.startswith("process (weaker isolation than docker: uid ")
    assert _slot_uid(result) >= 1_990_000
    assert "64 processes" in text and "world-readable" in text


def test_cli_warns_in_one_line(tmp_path: Path) -> None:
    # codeens: --backend process always says on stderr what it cannot contain
    candidate = tmp_path / "add.py"
    candidate.write_text("def add(a, b):\n    return a + b\n")
    tests = tmp_path / "tests.py"
    tests.write_text(ADD_TEST)
    done = run_cli(
        "sandbox", "run", str(candidate), "--tests", str(tests), "--backend", "process",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.splitlines() == [host_warning()]
    assert "world-readable" in done.stderr and "seccomp" in done.stderr
