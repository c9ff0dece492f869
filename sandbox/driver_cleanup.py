"""Between candidates: stop every process of the sandbox uid and empty the work areas.

Part of the driver program (its source is joined before driver.py's); standard library
only, Python >= 3.9. Runs in the trusted driver, never in a candidate's process.
"""

import os
import signal


def _sweep(spare, dirs):
    """Kill every other process we may signal, then empty the writable areas.

    Only inside the sandbox, where our uid runs nothing but candidates. Everything is
    stopped first so that a fork bomb cannot outrun the enumeration.
    """
    try:
        os.kill(-1, signal.SIGSTOP)
    except OSError:
        pass
    me = os.getpid()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in (me, 1) and int(name) not in spare:
            try:
                os.kill(int(name), signal.SIGKILL)
            except OSError:
                pass
    for pid in spare:
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass
    for top in dirs:
        _empty_dir(top)


def _empty_dir(top):
    """Remove everything under ``top`` that the sandbox uid can remove.

    Whatever the candidate left: directories with mode 000 or without write permission
    (their owner, our uid, may restore it), names with newlines or undecodable bytes, trees
    deeper than the path limit, thousands of small files. It walks with directory
    descriptors relative to each other and climbs back through ``..``, so no path is ever
    longer than one name and one descriptor is open at a time; nothing else runs meanwhile
    (every process of the uid is killed first).
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    try:
        fd = os.open(top, flags | os.O_NOFOLLOW)
    except OSError:
        return
    stack = []  # (names left in the parent, name of the directory we are in)
    names = _names(fd)
    try:
        while True:
            if names:
                name = names.pop()
                if _remove_entry(fd, name):
                    continue
                child = _enter(fd, name, flags | os.O_NOFOLLOW)
                if child is not None:
                    stack.append((names, name))
                    os.close(fd)
                    fd, names = child, _names(child)
                continue
            if not stack:
                return
            parent = os.open("..", flags, dir_fd=fd)
            os.close(fd)
            fd = parent
            names, name = stack.pop()
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                pass
    finally:
        os.close(fd)


def _names(fd):
    try:
        return os.listdir(fd)
    except OSError:
        return []


def _remove_entry(fd, name):
    """Unlink a non-directory or remove an empty directory; False for a directory to enter."""
    import stat

    try:
        mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
    except OSError:
        return True
    try:
        if stat.S_ISDIR(mode):
            os.rmdir(name, dir_fd=fd)
        else:
            os.unlink(name, dir_fd=fd)
    except OSError:
        return not stat.S_ISDIR(mode)
    return True


def _enter(fd, name, flags):
    """Open a directory the candidate may have locked with its mode (000, 0500, ...)."""
    try:
        os.chmod(name, 0o700, dir_fd=fd)
    except OSError:
        pass
    try:
        return os.open(name, flags, dir_fd=fd)
    except OSError:
        return None
