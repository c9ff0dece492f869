"""The trusted test driver: runs one candidate against its tests and reports a verdict.

This file, with driver_child.py's source before it, is executed as ``python3 -I -c``
inside the sandbox (and by the process backend on the host). It uses only the standard
library and must run on any Python >= 3.9. codeens never imports it; it reads its source.

Two processes take part:

* the *driver* (this program's first process) never runs candidate code. It reads framed
  JSON requests from stdin, forks the *child*, feeds it the tests one at a time and writes
  the only report the host trusts, as one JSON line on its own stdout;
* the *child* executes the candidate and then each test in the candidate's namespace. Its
  stdout/stderr go to a capped pipe (never to the host), stdin is /dev/null.

Why the report cannot be forged by the candidate: the tests frame is read from stdin only
after the child is forked, so the candidate's import-time code never has the tests in its
memory; each test is sent with a fresh random token, and a result is only accepted for the
test currently outstanding with its token; the number of results must equal the number of
tests; a missing or malformed result is a failure. The driver is marked non-dumpable so the
child (same uid) cannot read its memory or file descriptors through /proc.

Split tests (see split.py) go further: the child receives only a probe that yields the
value of each expression under test; the expected side stays here and is compared by
driver_values._judge on the decoded plain value. Only the driver can pass such a test: the
child may report a failure or an error for it, never a pass.
"""

import json
import os
import select
import signal
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # in the sandbox, the other driver files' sources precede this file's
    from codeens.sandbox.driver_child import _child
    from codeens.sandbox.driver_cleanup import _empty_dir, _sweep
    from codeens.sandbox.driver_values import _judge
    from codeens.sandbox.driver_verdict import _cgroup_counters, _verdict

MAX_MESSAGE = 1 << 20
MAX_REPORT = 16 << 20  # a value report: VALUE_UNITS, escaped as JSON at worst
KEPT_OUTPUT = 4096


def _read_exact(fd, n):
    chunks = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 16))
        if not chunk:
            raise EOFError("stdin closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd):
    """Read one frame: ASCII length, newline, JSON bytes. Unbuffered on purpose."""
    header = b""
    while not header.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            raise EOFError("stdin closed")
        header += byte
        if len(header) > 20:
            raise ValueError("bad frame header")
    return json.loads(_read_exact(fd, int(header)).decode("utf-8"))


def _undumpable():
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception:
        pass


# -------------------------------------------------------------------------- driver side


class _Run:
    def __init__(self, req, pid, ctl_w, res_r, out_r):
        self.req = req
        self.pid = pid
        self.ctl_w = ctl_w
        self.res_r = res_r
        self.out_r = out_r
        self.tests = []
        self.results = []
        self.output = b""
        self.output_bytes = 0
        self.res_buffer = b""
        self.imported = None
        self.import_msg = ""
        self.exit_on_import = False
        self.memory = False
        self.nproc = False
        self.counters = {}
        self.violation = ""
        self.killed_for = ""
        self.token = ""
        self.sent = -1
        self.finished = False
        self.setup = ""
        self.part = 0
        self.test_started = 0.0
        self.test_limit = 0.0

    def test_deadline(self):
        """When the outstanding test's own limit runs out (None: no test, or no limit)."""
        if self.finished or self.sent < 0 or not self.test_limit:
            return None
        return self.test_started + self.test_limit

    def send(self, obj):
        data = json.dumps(obj).encode("utf-8") + b"\n"
        try:
            view = memoryview(data)
            while view:
                n = os.write(self.ctl_w, view)
                view = view[n:]
        except OSError:
            pass

    def send_next(self):
        self.sent += 1
        if self.sent >= len(self.tests):
            self.finished = True
            self.send({"k": "done"})
            return
        self.token = os.urandom(16).hex()
        self.part = 0
        self.test_started = time.monotonic()
        test = self.tests[self.sent]
        self.test_limit = float(test.get("limit") or 0.0)
        message = {"k": "test", "i": self.sent, "tok": self.token}
        if "checks" in test:
            # Split: the child gets the expressions under test, never the expected side.
            message["probe"] = test["probe"]
            message["n"] = len(test["checks"])
        else:
            message["source"] = test["source"]
        if self.sent == 0:
            message["setup"] = self.setup
        self.send(message)

    def on_message(self, line):
        try:
            msg = json.loads(line.decode("utf-8"))
            kind = msg["k"]
        except Exception:
            self.violation = "malformed report from the candidate process"
            return
        if self.imported is None:
            if kind != "import":
                self.violation = "unexpected report before the candidate was imported"
                return
            self.imported = bool(msg.get("ok"))
            self.import_msg = str(msg.get("msg", ""))
            self.exit_on_import = bool(msg.get("exit"))
            self.memory = self.memory or bool(msg.get("memory"))
            self.nproc = self.nproc or bool(msg.get("nproc"))
            if self.imported:
                self.send_next()
            return
        if self.finished or kind not in ("test", "value") or msg.get("i") != self.sent:
            self.violation = "unexpected test report (not the test that was running)"
            return
        if msg.get("tok") != self.token:
            self.violation = "test report with a wrong token (forged report)"
            return
        split = "checks" in self.tests[self.sent]
        if kind == "value":
            self.on_value(msg, split)
            return
        outcome = msg.get("outcome")
        if outcome not in ("passed", "failed", "error"):
            self.violation = "test report with an unknown outcome"
            return
        if split and outcome == "passed":
            # Only the driver passes a split test; the child can only fail one.
            self.violation = "a pass claimed by the candidate process for a test it cannot decide"
            return
        self.memory = self.memory or bool(msg.get("memory"))
        self.nproc = self.nproc or bool(msg.get("nproc"))
        self.record(outcome, str(msg.get("msg", "")), float(msg.get("t", 0.0)))

    def on_value(self, msg, split):
        """One value of a split test, judged against the expected side held here."""
        checks = self.tests[self.sent].get("checks", [])
        if not split or msg.get("j") != self.part or self.part >= len(checks):
            self.violation = "unexpected value report (not the assert that was running)"
            return
        outcome, text = _judge(checks[self.part], msg)
        self.part += 1
        if outcome == "passed" and self.part < len(checks):
            self.send({"k": "go"})
            return
        self.record(outcome, text, time.monotonic() - self.test_started)

    def record(self, outcome, message, duration):
        self.results.append(self.outcome(outcome, message, duration))
        self.send_next()

    def outcome(self, outcome, message, duration):
        test = self.tests[self.sent]
        entry = {
            "name": test["name"],
            "outcome": outcome,
            "message": message[:2000],
            "duration": duration,
            "isolation": "split" if "checks" in test else "in-process",
        }
        if test.get("limit"):
            entry["limit"] = float(test["limit"])
        return entry

    def test_timed_out(self):
        """The outstanding test ran past its own limit: it is the last result."""
        self.killed_for = "test_timeout"
        message = "exceeded its limit of %.3f s" % self.test_limit
        elapsed = time.monotonic() - self.test_started
        self.results.append(self.outcome("timeout", message, elapsed))


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


class _Zygote:
    """A clean process, forked before any request is read, that forks candidate children.

    The server holds the tests of past and present runs in its memory; children forked from
    it would inherit them. Children forked from the zygote inherit only this program.
    """

    def __init__(self):
        import socket

        self.sock, theirs = socket.socketpair()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                self.sock.close()
                _zygote_loop(theirs)
            finally:
                os._exit(0)
        theirs.close()

    def call(self, obj, timeout):
        import socket

        self.sock.settimeout(timeout)
        self.sock.sendall(json.dumps(obj).encode("utf-8") + b"\n")
        data, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_MESSAGE, 4)
        if not data:
            raise EOFError("zygote is gone")
        return json.loads(data.decode("utf-8")), fds

    def stop(self):
        self.sock.close()
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except OSError:
            pass


def _zygote_loop(sock):
    # What every child imports, imported once here: each child would otherwise read them
    # from disk again (5 ms of a 17 ms run of a small candidate). Standard modules only;
    # the zygote never holds tests.
    import builtins  # noqa: F401
    import operator  # noqa: F401
    import resource  # noqa: F401
    import socket
    import traceback  # noqa: F401
    import types  # noqa: F401

    stream = sock.makefile("rb")
    for line in stream:
        msg = json.loads(line.decode("utf-8"))
        if msg["op"] == "spawn":
            req = msg["req"]
            ctl_r, ctl_w = os.pipe()
            res_r, res_w = os.pipe()
            out_r, out_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    stream.close()
                    sock.close()
                    for fd in (ctl_w, res_r, out_r):
                        os.close(fd)
                    _child(req, ctl_r, res_w, out_w)
                finally:
                    os._exit(70)
            for fd in (ctl_r, res_w, out_w):
                os.close(fd)
            reply = json.dumps({"pid": pid}).encode("utf-8")
            socket.send_fds(sock, [reply], [ctl_w, res_r, out_r])
            for fd in (ctl_w, res_r, out_r):
                os.close(fd)
        elif msg["op"] == "reap":
            status, rusage = _reap(msg["pid"], time.monotonic() + float(msg["timeout"]))
            usage = None
            if rusage is not None:
                usage = [rusage.ru_utime, rusage.ru_stime, rusage.ru_maxrss]
            sock.sendall(json.dumps({"status": status, "rusage": usage}).encode("utf-8"))


def _drive(req, zygote):
    started = time.monotonic()
    deadline = started + float(req.get("timeout", 10))
    output_limit = int(req.get("output_limit", 1 << 20))
    counters = _cgroup_counters() if req.get("own_cgroup") else {}
    reply, fds = zygote.call({"op": "spawn", "req": req}, 10.0)
    pid = reply["pid"]
    ctl_w, res_r, out_r = fds
    run = _Run(req, pid, ctl_w, res_r, out_r)
    # Only now, with the child running the candidate, are the tests read.
    tests_frame = _read_frame(0)
    run.tests = tests_frame["tests"]
    run.setup = tests_frame.get("setup", "")
    open_fds = [res_r, out_r]
    while open_fds:
        now = time.monotonic()
        remaining = deadline - now
        if remaining <= 0:
            run.killed_for = "timeout"
            break
        test_deadline = run.test_deadline()
        if test_deadline is not None:
            if test_deadline <= now:
                run.test_timed_out()
                break
            remaining = min(remaining, test_deadline - now)
        ready, _, _ = select.select(open_fds, [], [], remaining)
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                open_fds.remove(fd)
                continue
            if fd == out_r:
                run.output_bytes += len(chunk)
                if len(run.output) < KEPT_OUTPUT:
                    run.output += chunk[: KEPT_OUTPUT - len(run.output)]
                if run.output_bytes > output_limit:
                    run.killed_for = "output_limit"
            else:
                run.res_buffer += chunk
                while b"\n" in run.res_buffer and not run.violation:
                    line, _, run.res_buffer = run.res_buffer.partition(b"\n")
                    run.on_message(line)
                if len(run.res_buffer) > MAX_REPORT:
                    run.violation = "oversized report from the candidate process"
        if run.killed_for or run.violation or run.finished:
            break
    if not run.finished:
        _kill_group(pid)
    for fd in (ctl_w, res_r, out_r):
        os.close(fd)
    # A finished child exits by itself on "done"; give it a moment so its exit status is
    # its own, then the group is killed anyway to remove anything it left running. One
    # stopped for its time is killed by the zygote at once: in a pid namespace (process
    # backend as root) the pid above is the zygote's view, and the kill here misses.
    grace = 0.0 if run.killed_for in ("timeout", "test_timeout") else 0.5
    reaped, _ = zygote.call({"op": "reap", "pid": pid, "timeout": grace}, 5.0)
    _kill_group(pid)
    status = reaped["status"]
    if counters:
        after = _cgroup_counters()
        run.counters = {k: after.get(k, v) - v for k, v in counters.items()}
    return _report(run, status, reaped["rusage"], time.monotonic() - started)


def _reap(pid, until):
    while True:
        try:
            got, status, rusage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            return None, None
        if got:
            return status, rusage
        if time.monotonic() > until:
            _kill_group(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.001)


def _report(run, status, rusage, wall):
    exit_status = None
    signaled = None
    if status is not None:
        if os.WIFSIGNALED(status):
            signaled = os.WTERMSIG(status)
            exit_status = -signaled
        elif os.WIFEXITED(status):
            exit_status = os.WEXITSTATUS(status)
    verdict, message = _verdict(run, signaled, exit_status, rusage)
    if verdict in ("failed", "error") and (run.nproc or run.counters.get("pids_refused", 0)):
        message = "process limit reached (a fork or thread start was refused); " + message
    expected = len(run.tests)
    passed = sum(1 for r in run.results if r["outcome"] == "passed")
    resources = {"wall_s": round(wall, 6), "output_bytes": run.output_bytes}
    if rusage is not None:
        resources.update(
            {
                "max_rss_kb": rusage[2],
                "cpu_user_s": round(rusage[0], 6),
                "cpu_sys_s": round(rusage[1], 6),
            }
        )
    return {
        "verdict": verdict,
        "message": message,
        "tests_total": expected,
        "tests_passed": passed,
        "tests": run.results,
        "exit_status": exit_status,
        "duration": round(wall, 6),
        "resources": resources,
        "output": run.output.decode("utf-8", "replace"),
    }


def _write_line(obj):
    view = memoryview(json.dumps(obj).encode("utf-8") + b"\n")
    while view:
        view = view[os.write(1, view) :]


def main():
    """Serve requests from stdin until it closes (or after one, if the request says so)."""
    _undumpable()
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    zygote = _Zygote()
    try:
        while True:
            try:
                request = _read_frame(0)
            except EOFError:
                return
            sweep = bool(request.get("sweep")) and os.getuid() != 0
            if sweep:
                _sweep((zygote.pid,), request.get("wipe", []))
            try:
                report = _drive(request, zygote)
            except (OSError, EOFError, ValueError) as exc:
                # The zygote or a pipe was destroyed: report it and stop serving, so the
                # host starts a fresh server rather than forking from a tainted one.
                _write_line(
                    {
                        "verdict": "failed",
                        "message": "the candidate disrupted the test driver (%s)" % exc,
                        "final": True,
                    }
                )
                return
            if sweep:
                _sweep((zygote.pid,), request.get("wipe", []))
            elif request.get("workdir"):
                _empty_dir(request["workdir"])
            _write_line(report)
            if request.get("once"):
                return
    finally:
        zygote.stop()


if __name__ == "__main__":
    main()
