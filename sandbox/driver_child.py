"""The candidate side of the trusted driver: runs in the forked child.

Executed as part of the driver program (its source is joined before driver.py's by
``codeens.sandbox.backends.base.driver_source``); standard library only, Python >= 3.9.
Everything the harness needs is bound before the candidate's code runs.
"""

import errno
import json
import os
import signal
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # in the sandbox, driver_values.py's source precedes this file's
    from codeens.sandbox.driver_values import _value_encoder


def _operators():
    import operator

    return {
        "==": operator.eq,
        "!=": operator.ne,
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
        "is": operator.is_,
        "is not": operator.is_not,
        "in": operator.contains,
        "not in": operator.contains,
    }


def _child(req, ctl_r, res_w, out_w):
    """Runs in the forked child: execute the candidate, then tests on demand."""
    import builtins
    import resource
    import traceback
    import types

    os.setsid()
    getpid = os.getpid
    exit_now = os._exit
    me = getpid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    keep = sorted({0, 1, 2, ctl_r, res_w})
    bounds = [*keep, 1024]
    for i in range(len(keep)):  # every other descriptor below 1024, one call per gap
        os.closerange(bounds[i] + 1, bounds[i + 1])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGPIPE, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    mem = int(req.get("memory_mb") or 0)
    limits = [(resource.RLIMIT_CORE, 0)]
    if mem:
        limits.append((resource.RLIMIT_AS, mem << 20))
    cpu = int(float(req.get("timeout", 10))) + 2
    limits.append((resource.RLIMIT_CPU, cpu))
    fsize = int(req.get("file_limit_mb") or 0)
    if fsize:
        limits.append((resource.RLIMIT_FSIZE, fsize << 20))
    for which, value in limits:
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass
    try:
        os.chdir(req.get("workdir") or "/tmp")
    except OSError:
        pass

    # Everything the harness uses is bound here, before the candidate runs, so that
    # patching modules or builtins from candidate code cannot reach it.
    filename = req.get("filename") or "<candidate>"
    write = os.write
    read = os.read
    dumps = json.JSONEncoder(ensure_ascii=True).encode
    loads = json.JSONDecoder().decode
    fmt_exc = traceback.format_exception_only
    perf = time.perf_counter
    function_type = types.FunctionType
    ops = _operators()
    dunders = (
        "__eq__",
        "__ne__",
        "__lt__",
        "__le__",
        "__gt__",
        "__ge__",
        "__bool__",
        "__len__",
        "__contains__",
        "__hash__",
    )
    containers = (list, tuple, set, frozenset)
    real_type = type
    real_bool = bool

    def tainted(value, budget):
        # A value is tainted when candidate code decides how it compares or tests true.
        stack = [value]
        while stack and budget[0] > 0:
            budget[0] -= 1
            item = stack.pop()
            kind = real_type(item)
            for klass in kind.__mro__:
                attrs = klass.__dict__
                for name in dunders:
                    member = attrs.get(name)
                    code = getattr(member, "__code__", None)
                    if (
                        real_type(member) is function_type
                        and code is not None
                        and (code.co_filename == filename)
                    ):
                        return True
            if kind in containers or any(k in containers for k in kind.__mro__):
                stack.extend(item)
            elif isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
        return False

    last_failure = [""]
    real_repr = repr

    def shown(value):
        text = real_repr(value)
        return text if len(text) <= 200 else text[:197] + "..."

    def trusted_cmp(names, *operands):
        if tainted(operands, [100000]):
            last_failure[0] = "comparison decided by a candidate-defined method (refused)"
            return False
        for i, name in enumerate(names):
            left, right = operands[i], operands[i + 1]
            if name == "in":
                ok = ops["in"](right, left)
            elif name == "not in":
                ok = not ops["in"](right, left)
            else:
                ok = ops[name](left, right)
            if not real_bool(ok):
                last_failure[0] = "%s %s %s is false" % (shown(left), name, shown(right))
                return False
        return True

    def trusted_truth(value):
        if tainted(value, [100000]):
            last_failure[0] = "truth value decided by a candidate-defined method (refused)"
            return False
        return real_bool(value)

    encode = _value_encoder(tainted)
    next_value = next
    stop_iteration = StopIteration
    assertion_error = AssertionError
    memory_error = MemoryError
    count = range

    def send(obj):
        if getpid() != me:
            # A copy made by the candidate's fork() reached the harness: only the process
            # the driver started reports, so the copy leaves without a word.
            exit_now(0)
        data = dumps(obj).encode("ascii") + b"\n"
        view = memoryview(data)
        while view:
            n = write(res_w, view)
            view = view[n:]

    buffer = [b""]

    def receive():
        while b"\n" not in buffer[0]:
            chunk = read(ctl_r, 1 << 16)
            if not chunk:
                os._exit(0)
            buffer[0] += chunk
        line, _, rest = buffer[0].partition(b"\n")
        buffer[0] = rest
        return loads(line.decode("utf-8"))

    def describe(exc):
        kind = real_type(exc).__name__
        if isinstance(exc, AssertionError) and not exc.args:
            return kind + (": " + last_failure[0] if last_failure[0] else "")
        text = "".join(fmt_exc(real_type(exc), exc)).strip()
        return text[-2000:]

    blocking_io = BlockingIOError
    runtime_error = RuntimeError
    again = errno.EAGAIN

    def refused(exc):
        # The process limit says no: fork() fails with EAGAIN, a thread cannot start.
        if isinstance(exc, blocking_io):
            return exc.errno == again
        return isinstance(exc, runtime_error) and "can't start new thread" in str(exc)

    namespace = {"__name__": "candidate", "__builtins__": builtins}
    started = perf()
    try:
        code = compile(req["candidate"], filename, "exec")
        exec(code, namespace)
    except SystemExit as exc:
        send({"k": "import", "ok": False, "exit": True, "msg": "SystemExit(%r)" % (exc.code,)})
        os._exit(0)
    except MemoryError:
        send({"k": "import", "ok": False, "memory": True, "msg": "MemoryError"})
        os._exit(0)
    except BaseException as exc:
        send({"k": "import", "ok": False, "msg": describe(exc), "nproc": refused(exc)})
        os._exit(0)
    send({"k": "import", "ok": True, "t": perf() - started})

    first = receive()
    namespace["__codeens_cmp__"] = trusted_cmp
    namespace["__codeens_truth__"] = trusted_truth
    setup_error = None
    try:
        exec(compile(first.get("setup", ""), "<tests>", "exec"), namespace)
    except BaseException as exc:
        setup_error = "test setup failed: " + describe(exc)

    def report(message, outcome, text, started, memory=False, nproc=False):
        send(
            {
                "k": "test",
                "i": message["i"],
                "tok": message["tok"],
                "outcome": outcome,
                "msg": text,
                "memory": memory,
                "nproc": nproc,
                "t": perf() - started,
            }
        )

    def probe(message):
        # A split test: only the expressions under test run here. Each value goes to the
        # driver, which holds the expected side; it answers "go" for the next one, or
        # sends the next test once it has decided this one.
        started = perf()
        last_failure[0] = ""
        if setup_error is not None:
            report(message, "error", setup_error, started)
            return receive()
        try:
            exec(compile(message["probe"], "<tests>", "exec"), namespace)
            values = namespace.pop("__codeens_probe__")
            for j in count(message["n"]):
                value = next_value(values)  # type: ignore[call-overload]
                head = {"k": "value", "i": message["i"], "tok": message["tok"], "j": j}
                send(dict(head, **encode(value)))
                reply = receive()
                if reply.get("k") != "go":
                    return reply
        except stop_iteration:
            report(message, "error", "the test ended before all its asserts ran", started)
        except assertion_error as exc:
            report(message, "failed", describe(exc), started)
        except memory_error:
            report(message, "error", "MemoryError", started, memory=True)
        except BaseException as exc:
            report(message, "error", describe(exc), started, nproc=refused(exc))
        return receive()

    message = first
    while message.get("k") == "test":
        if "probe" in message:
            message = probe(message)
            continue
        namespace["__codeens_cmp__"] = trusted_cmp
        namespace["__codeens_truth__"] = trusted_truth
        started = perf()
        memory = False
        nproc = False
        last_failure[0] = ""
        if setup_error is not None:
            outcome, text = "error", setup_error
        else:
            try:
                exec(compile(message["source"], "<tests>", "exec"), namespace)
                outcome, text = "passed", ""
            except AssertionError as exc:
                outcome, text = "failed", describe(exc)
            except MemoryError:
                outcome, text, memory = "error", "MemoryError", True
            except BaseException as exc:
                outcome, text, nproc = "error", describe(exc), refused(exc)
        report(message, outcome, text, started, memory, nproc)
        message = receive()
    os._exit(0)
