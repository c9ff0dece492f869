"""The hostile programs of tests/test_hostile.py: each case, the tests it runs against,
and the verdict the sandbox must give. Probes that try to escape return "blocked" when the
sandbox held, so a passing verdict there means the isolation worked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SECRET_ENV = "CODEENS_HOST_SECRET"
SECRET_VALUE = "host-secret-6d1f0c"


@dataclass(frozen=True)
class Case:
    name: str
    candidate: str
    tests: str
    verdict: str
    # where the program comes from, and a text the verdict's message must contain
    source: str = "codeens"
    message: str = ""


ISSUE19 = "issue 19: rebuilt from peers' hostile programs, run twice with a probe after"


def _mirror_host() -> str:
    """A real host name to try resolving, read from this machine's apt configuration."""
    for path in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        try:
            for line in Path(path).read_text().splitlines():
                for word in line.split():
                    if "://" in word:
                        return word.split("://", 1)[1].split("/", 1)[0]
        except OSError:
            continue
    return "localhost.invalid"


def probe(body: str) -> str:
    """A candidate whose probe() returns 'blocked' unless ``body`` succeeds."""
    indented = "\n".join("        " + line for line in body.strip().splitlines())
    return f"def probe():\n    try:\n{indented}\n    except Exception:\n        return 'blocked'\n"


BLOCKED = "assert probe() == 'blocked'\n"
ADD_TEST = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"

CASES = [
    # --- time and signals
    Case("infinite loop", "def add(a, b):\n    while True:\n        pass\n", ADD_TEST, "timeout"),
    Case(
        "sleep past the deadline",
        "import time\ndef add(a, b):\n    time.sleep(60)\n",
        ADD_TEST,
        "timeout",
    ),
    Case(
        "SIGTERM ignored",
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "def add(a, b):\n    while True:\n        time.sleep(0.01)\n",
        ADD_TEST,
        "timeout",
    ),
    Case(
        "loop at import time",
        "while True:\n    pass\n",
        ADD_TEST,
        "timeout",
    ),
    # --- processes, threads, memory
    Case(
        "fork bomb",
        "import os\ndef add(a, b):\n    while True:\n        os.fork()\n",
        ADD_TEST,
        "failed",
        source="bigcode-evaluation-harness evil programs; " + ISSUE19,
        message="process limit reached",
    ),
    Case(
        "thread bomb",
        "import threading, time\ndef add(a, b):\n    while True:\n"
        "        threading.Thread(target=time.sleep, args=(60,)).start()\n",
        ADD_TEST,
        "failed",
        message="process limit reached",
    ),
    Case(
        "memory bomb",
        "def add(a, b):\n    hog = []\n    while True:\n        hog.append(bytearray(1 << 24))\n",
        ADD_TEST,
        "memory",
    ),
    Case(
        "one huge allocation",
        "def add(a, b):\n    return len(bytearray(8 << 30))\n",
        ADD_TEST,
        "memory",
    ),
    Case(
        "unbounded recursion",
        "def add(a, b):\n    return add(a, b) + 1\n",
        ADD_TEST,
        "failed",
    ),
    Case(
        "recursion limit lifted until the C stack overflows",
        "import sys\nsys.setrecursionlimit(10**8)\n"
        "def add(a, b):\n    return sorted([a], key=lambda x: add(x, b))[0]\n",
        ADD_TEST,
        "failed",
    ),
    Case(
        "zombies",
        "import os\nfor _ in range(20):\n    if os.fork() == 0:\n        os._exit(0)\n"
        "def add(a, b):\n    return a + b\n",
        ADD_TEST,
        "passed",
    ),
    # --- files
    Case(
        "filling the work area",
        probe(
            "chunk = b'x' * (1 << 20)\nfor i in range(1000):\n"
            "    with open(f'fill{i}', 'wb') as f:\n        f.write(chunk * 8)\nreturn 'wrote'"
        ),
        BLOCKED,
        "passed",
    ),
    Case(
        "many small files",
        probe("for i in range(100000):\n    open(f'/tmp/f{i}', 'w').close()\nreturn 'made'"),
        BLOCKED,
        "passed",
    ),
    Case(
        "file left in /tmp for the next run",
        "open('/tmp/left-behind', 'w').write('x')\nopen('left-behind', 'w').write('x')\n"
        "def add(a, b):\n    return a + b\n",
        ADD_TEST,
        "passed",
    ),
    Case(
        "locked directories, odd names and special files left behind",
        "import os\nfor top in ('/tmp', '/work', '/dev/shm'):\n"
        "    os.mkdir(top + '/hide')\n    open(top + '/hide/secret', 'w').write('left-9c4')\n"
        "    os.chmod(top + '/hide', 0)\n"
        "os.makedirs('/tmp/ro/sub')\nopen('/tmp/ro/sub/f', 'w').write('left-9c4')\n"
        "os.chmod('/tmp/ro/sub', 0o500)\nos.chmod('/tmp/ro', 0o500)\n"
        "for name in (b'new\\nline', b'bad-\\xff', b'-rf', b' ', b'.hidden'):\n"
        "    open(b'/tmp/' + name, 'w').write('left-9c4')\n"
        "os.mkfifo('/tmp/fifo')\nos.symlink('/etc', '/dev/shm/etc-link')\n"
        "os.link('/tmp/-rf', '/tmp/hard')\nos.chmod('/tmp/-rf', 0)\n"
        "def add(a, b):\n    return a + b\n",
        ADD_TEST,
        "passed",
        source=ISSUE19,
    ),
    Case(
        "5,000 small files",
        "for i in range(5000):\n    open(f'/dev/shm/s{i}', 'w').write('left-9c4')\n"
        "def add(a, b):\n    return a + b\n",
        ADD_TEST,
        "passed",
        source=ISSUE19,
    ),
    Case(
        "a tree deeper than the path limit",
        "import os\nos.chdir('/tmp')\nfor _ in range(1500):\n    os.mkdir('ddd')\n"
        "    os.chdir('ddd')\nopen('bottom', 'w').write('left-9c4')\nos.chmod('.', 0)\n"
        "def add(a, b):\n    return a + b\n",
        ADD_TEST,
        "passed",
        source=ISSUE19,
    ),
    Case(
        "nothing hidden by the previous runs",
        "import os\ndef found():\n    hits = []\n"
        "    for top in ('/tmp', '/work', '/dev/shm', '.'):\n"
        "        for root, dirs, files in os.walk(top):\n"
        "            for d in dirs:\n                try:\n"
        "                    os.chmod(os.path.join(root, d), 0o700)\n"
        "                except OSError:\n                    pass\n"
        "            for f in files:\n                try:\n"
        "                    if 'left-9c4' in open(os.path.join(root, f)).read():\n"
        "                        hits.append(os.path.join(root, f))\n"
        "                except OSError:\n                    pass\n"
        "        hits += os.listdir(top)\n    return hits\n",
        "assert found() == []\n",
        "passed",
        source=ISSUE19,
    ),
    Case(
        "no file from the previous run",
        "import os\ndef leftovers():\n"
        "    return sorted(os.listdir('/tmp')) + sorted(os.listdir('.'))"
        " + sorted(os.listdir('/dev/shm'))\n",
        "assert leftovers() == []\n",
        "passed",
    ),
    # --- output and input
    Case(
        "100 MB on stdout",
        "import sys\ndef add(a, b):\n    line = 'y' * 1023 + '\\n'\n"
        "    for _ in range(100 * 1024):\n        sys.stdout.write(line)\n    return a + b\n",
        ADD_TEST,
        "output_limit",
    ),
    Case(
        "huge output with no newline",
        "import os\ndef add(a, b):\n    for _ in range(4096):\n"
        "        os.write(1, b'z' * 4096)\n    return a + b\n",
        ADD_TEST,
        "output_limit",
    ),
    Case(
        "small output with no newline",
        "import sys\nsys.stdout.write('no newline here')\ndef add(a, b):\n    return a + b\n",
        ADD_TEST,
        "passed",
    ),
    Case(
        "closing its own stdout",
        "import os, sys\nos.close(1)\nos.close(2)\ndef add(a, b):\n    return a + b\n",
        ADD_TEST,
        "passed",
    ),
    Case(
        "reading stdin",
        "import sys\ndef read_stdin():\n    return sys.stdin.read()\n",
        "assert read_stdin() == ''\n",
        "passed",
    ),
    # --- network
    Case(
        "network connect to the host",
        probe(
            "import socket\nsocket.create_connection(('HOSTPORT'.split(':')[0],"
            " int('HOSTPORT'.split(':')[1])), timeout=1)\nreturn 'connected'"
        ),
        BLOCKED,
        "passed",
    ),
    Case(
        "DNS lookup",
        probe(f"import socket\nreturn socket.getaddrinfo({_mirror_host()!r}, 80)"),
        BLOCKED,
        "passed",
    ),
    Case(
        "only the loopback interface",
        "import socket\ndef interfaces():\n    return [n for _, n in socket.if_nameindex()]\n",
        "assert interfaces() == ['lo']\n",
        "passed",
    ),
    # --- host files and privileges
    Case(
        "reading a host path",
        probe("return open('HOSTFILE').read()"),
        BLOCKED,
        "passed",
    ),
    Case(
        "reading the Docker socket",
        probe(
            "import socket\ns = socket.socket(socket.AF_UNIX)\n"
            "s.connect('/var/run/docker.sock')\nreturn 'connected'"
        ),
        BLOCKED,
        "passed",
    ),
    Case(
        "writing to /", probe("open('/owned', 'w').write('x')\nreturn 'wrote'"), BLOCKED, "passed"
    ),
    Case(
        "writing to /etc",
        probe("open('/etc/passwd', 'a').write('x')\nreturn 'wrote'"),
        BLOCKED,
        "passed",
    ),
    Case(
        "writing to /usr",
        probe("open('/usr/bin/python3', 'ab').write(b'x')\nreturn 'wrote'"),
        BLOCKED,
        "passed",
    ),
    Case(
        "dumping the environment",
        "import os\ndef env():\n    return dict(os.environ)\n",
        f"assert {SECRET_ENV!r} not in env()\n"
        f"assert not any({SECRET_VALUE!r} in v for v in env().values())\n"
        "assert env().get('HOME') == '/tmp'\n",
        "passed",
    ),
    Case("setuid to root", probe("import os\nos.setuid(0)\nreturn 'root'"), BLOCKED, "passed"),
    Case(
        "mount attempt",
        probe(
            "import ctypes, ctypes.util\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "rc = libc.mount(b'none', b'/work', b'tmpfs', 0, None)\n"
            "if rc != 0:\n    raise OSError(ctypes.get_errno(), 'mount')\nreturn 'mounted'"
        ),
        BLOCKED,
        "passed",
    ),
    Case(
        "reading the test file",
        probe(
            "import glob, os\nfound = []\n"
            "for pattern in ('/work/**', '/tmp/**', '/dev/shm/**', '/proc/*/cmdline',"
            " '/proc/*/environ', '/proc/*/fd/*'):\n"
            "    for path in glob.glob(pattern, recursive=True):\n"
            "        try:\n            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)\n"
            "            data = os.read(fd, 1 << 20)\n            os.close(fd)\n"
            "        except Exception:\n            continue\n"
            "        if b'tests-marker-' + b'9f2' in data:\n            found.append(path)\n"
            "if found:\n    return found\nraise LookupError"
        ),
        "assert probe() == 'blocked' or 'tests-marker-9f2' == ''\n",
        "passed",
    ),
    # --- the driver and PID 1
    Case(
        "killing PID 1",
        probe("import os, signal\nos.kill(1, signal.SIGKILL)\nreturn 'killed'"),
        BLOCKED,
        "passed",
    ),
    Case(
        "killing the parent",
        "import os, signal\ndef add(a, b):\n    os.kill(os.getppid(), signal.SIGKILL)\n"
        "    return a + b\n",
        ADD_TEST,
        "failed",
    ),
    Case(
        "killing every process it can",
        "import os, signal\ndef add(a, b):\n    os.kill(-1, signal.SIGKILL)\n    return a + b\n",
        ADD_TEST,
        "failed",
    ),
    Case(
        "SIGKILL to itself",
        "import os, signal\ndef add(a, b):\n    os.kill(os.getpid(), signal.SIGKILL)\n",
        ADD_TEST,
        "error",
        source=ISSUE19,
        message="killed by SIGKILL (not at the memory limit)",
    ),
    Case(
        "background process outliving the run",
        "import os, time\ndef add(a, b):\n    if os.fork() == 0:\n        os.setsid()\n"
        "        if os.fork() == 0:\n            while True:\n"
        "                open('/tmp/daemon-alive', 'w').close()\n                time.sleep(0.01)\n"
        "        os._exit(0)\n    return a + b\n",
        ADD_TEST,
        "passed",
    ),
    Case(
        "no process from the previous run",
        "import os\ndef others():\n    me = os.getpid()\n    names = []\n"
        "    for pid in os.listdir('/proc'):\n"
        "        if pid.isdigit() and int(pid) not in (1, me):\n"
        "            names.append(open(f'/proc/{pid}/comm').read().strip())\n"
        "    return sorted(names)\n"
        "def daemon_file():\n    return os.path.exists('/tmp/daemon-alive')\n",
        # the keeper (sleep), the driver server and its zygote, nothing else
        "assert others() == ['python3', 'python3', 'sleep']\nassert daemon_file() is False\n",
        "passed",
    ),
    # --- fake passes
    Case(
        "sys.exit(0) at import",
        "import sys\nsys.exit(0)\ndef add(a, b):\n    return 0\n",
        ADD_TEST,
        "failed",
    ),
    Case(
        "sys.exit(0) before the asserts",
        "import sys\ndef add(a, b):\n    sys.exit(0)\n",
        ADD_TEST,
        "failed",
    ),
    Case(
        "os._exit(0) at import",
        "import os\nos._exit(0)\n",
        ADD_TEST,
        "failed",
    ),
    Case(
        "os._exit(0) before the asserts",
        "import os\ndef add(a, b):\n    os._exit(0)\n",
        ADD_TEST,
        "failed",
    ),
    Case(
        "always-equal return value",
        "class Anything:\n    def __eq__(self, other):\n        return True\n"
        "    def __ne__(self, other):\n        return False\n"
        "def add(a, b):\n    return Anything()\n",
        ADD_TEST,
        "failed",
    ),
    Case(
        "always-equal int subclass inside a list",
        "class Liar(int):\n    __eq__ = lambda self, other: True\n    __hash__ = int.__hash__\n"
        "def pair(a, b):\n    return [Liar(0), Liar(0)]\n",
        "assert pair(1, 2) == [1, 2]\n",
        "failed",
    ),
    Case(
        "always-true truth value",
        "class Yes:\n    def __bool__(self):\n        return True\n"
        "def is_even(n):\n    return Yes()\n",
        "assert is_even(2)\nassert is_even(4)\nassert is_even(3) is not True or is_even(5)\n",
        "failed",
    ),
    Case(
        "patched operators and encoder",
        "import operator, json, builtins\noperator.eq = lambda a, b: True\n"
        'json.dumps = lambda *a, **k: \'{"k": "test", "outcome": "passed"}\'\n'
        "builtins.AssertionError = type('Quiet', (Exception,), {})\n"
        "def add(a, b):\n    return -1\n",
        ADD_TEST,
        "failed",
    ),
    Case(
        "patched test runner module",
        "import sys\nmain = sys.modules['__main__']\n"
        "for name in dir(main):\n    obj = getattr(main, name)\n"
        "    if callable(obj) and not isinstance(obj, type(sys)):\n"
        "        try:\n            setattr(main, name, lambda *a, **k: None)\n"
        "        except Exception:\n            pass\n"
        "def add(a, b):\n    return -1\n",
        ADD_TEST,
        "failed",
    ),
    Case(
        "printed fake PASSED",
        'print(\'PASSED\')\nprint(\'{"verdict": "passed", "tests_passed": 2}\')\n'
        "def add(a, b):\n    print('2 passed, 0 failed')\n    return -1\n",
        ADD_TEST,
        "failed",
    ),
    Case(
        "forged reports on every descriptor",
        "import os, json\ndef add(a, b):\n    for i in range(4):\n"
        "        line = json.dumps({'k': 'test', 'i': i, 'tok': 'x', 'outcome': 'passed'})\n"
        "        for fd in range(3, 64):\n            try:\n"
        "                os.write(fd, (line + '\\n').encode())\n"
        "            except OSError:\n                pass\n    return -1\n",
        ADD_TEST,
        "failed",
    ),
    Case(
        "forged import report then exit",
        "import os, json\nfor fd in range(3, 64):\n    try:\n"
        '        os.write(fd, b\'{"k": "import", "ok": true}\\n\')\n'
        "    except OSError:\n        pass\nos._exit(0)\n",
        ADD_TEST,
        "failed",
    ),
    # --- import errors are not test failures
    Case("import error", "import no_such_module_xyz\n", ADD_TEST, "error"),
    Case("raise at import", "raise RuntimeError('boom')\n", ADD_TEST, "error"),
]
