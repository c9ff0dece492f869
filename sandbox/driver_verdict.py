"""What happened to a candidate: cgroup counters read around a run, and the verdict.

Part of the driver program (its source is joined before driver.py's); standard library
only, Python >= 3.9. Runs in the trusted driver, never in a candidate's process.
"""

import signal

# cgroup v2 file, cgroup v1 file, and the counter's name in them
_COUNTERS = {
    "oom_kill": (
        ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"),
        "oom_kill",
    ),
    "pids_refused": (("/sys/fs/cgroup/pids.events", "/sys/fs/cgroup/pids/pids.events"), "max"),
}


def _cgroup_counters():
    """The sandbox cgroup's OOM kills and refused forks so far (where the files exist).

    Read only when the request says the cgroup is the sandbox's own (a container), so
    that other processes on a host cannot move them.
    """
    found = {}
    for key, (paths, field) in _COUNTERS.items():
        for path in paths:
            try:
                with open(path) as handle:
                    for line in handle:
                        parts = line.split()
                        if len(parts) == 2 and parts[0] == field:
                            found[key] = int(parts[1])
            except (OSError, ValueError):
                continue
            if key in found:
                break
    return found


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return "signal %d" % number


def _at_memory_limit(run, rusage):
    """Peak RSS within 10 % of the memory limit (where no cgroup counter says more)."""
    limit_kb = int(run.req.get("memory_mb") or 0) * 1024
    return bool(limit_kb and rusage is not None and rusage[2] >= 0.9 * limit_kb)


def _verdict(run, signaled, exit_status, rusage):
    """The verdict and its message; ``memory`` only when the memory limit was hit."""
    expected = len(run.tests)
    passed = sum(1 for r in run.results if r["outcome"] == "passed")
    killed = signaled == signal.SIGKILL and not run.finished and not run.violation
    if run.killed_for == "timeout":
        return "timeout", "wall-clock deadline exceeded"
    if run.killed_for == "test_timeout":
        last = run.results[-1]
        return "timeout", "test %s %s" % (last["name"], last["message"])
    if run.killed_for == "output_limit":
        return "output_limit", "output exceeded %d bytes" % run.req.get("output_limit")
    if signaled == signal.SIGXCPU:
        return "timeout", "CPU time limit exceeded"
    if run.memory:
        return "memory", "memory limit exceeded (MemoryError)"
    if run.counters.get("oom_kill", 0) > 0 and (killed or not run.finished):
        return "memory", "killed by the out-of-memory killer at the memory limit"
    if killed and _at_memory_limit(run, rusage):
        return "memory", "killed at the memory limit (peak RSS %d kB)" % rusage[2]
    if run.violation:
        return "failed", run.violation
    if killed:
        return "error", "candidate process was killed by SIGKILL (not at the memory limit)"
    if run.imported is False:
        if run.exit_on_import:
            return "failed", "candidate exited during import: " + run.import_msg
        return "error", run.import_msg
    ended = "exit status %s" % exit_status
    if signaled is not None:
        ended = "killed by " + _signal_name(signaled)
    if run.imported is None:
        return "failed", "candidate process ended before reporting (%s)" % ended
    if len(run.results) != expected:
        return "failed", "only %d of %d tests reported (%s)" % (len(run.results), expected, ended)
    if passed == expected:
        return "passed", ""
    return "failed", "%d of %d tests failed" % (expected - passed, expected)
