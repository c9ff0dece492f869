"""Warm containers kept between codeens processes: parked on close, claimed on start.

A pool with ``keep_warm`` seconds renames its idle containers on close to
``codeens-park-<key>-<expiry ms>-<nonce>`` instead of removing them; the next pool of the
same key on this host (same image id, limits and hardening, see :func:`pool_key`) renames
one back to ``codeens-sbx-<pid>-<nonce>`` and uses it, so a pre-commit hook or a second
``codeens solve`` skips the container start. Renaming is atomic in the engine: of two
processes claiming the same container, one gets it and the other's rename fails.

The driver sweeps every process of the sandbox uid and empties every writable area before
each candidate, so a claimed container is as clean as a reused one within a pool.

Expiry: one attendant process per host (``python -m codeens.sandbox.backends.docker_park``,
started detached by the first pool that parks while none runs) removes parked containers
whose time has passed and exits when none are left. A pool never claims a container within
:data:`CLAIM_MARGIN_S` of its expiry, so the attendant never removes one being claimed.
``reap_stale`` removes expired ones too, should the attendant have died.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

PARK_PREFIX = "codeens-park-"
USE_PREFIX = "codeens-sbx-"
LABEL = "codeens.sandbox"
OWNER_LABEL = f"{LABEL}.owner"
CLAIM_MARGIN_S = 2.0
MAX_PARKED = 8  # per key: more than this are removed, not parked
POLL_S = 5.0
_PARKED = re.compile(rf"^/?{PARK_PREFIX}([0-9a-f]+)-(\d+)-[0-9a-f]+$")
_CLAIMING = threading.Lock()
_IN_USE = re.compile(rf"^/?{USE_PREFIX}(\d+)-[0-9a-f]+$")


def pool_key(options: Mapping[str, Any], image_id: str) -> str:
    """What a parked container must match to serve a pool: its creation options (limits,
    hardening) without name and labels, and the image by id (a rebuilt tag differs)."""
    stable = {k: v for k, v in options.items() if k not in ("name", "labels", "image")}
    stable["image_id"] = image_id
    text = json.dumps(stable, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def in_use_name() -> str:
    """A name that says which process of this host uses the container."""
    return f"{USE_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"


def parked_name(key: str, expiry: float) -> str:
    return f"{PARK_PREFIX}{key}-{int(expiry * 1000)}-{uuid.uuid4().hex[:8]}"


def parked(info: Mapping[str, Any]) -> tuple[str, float] | None:
    """(key, expiry) of a parked container's listing entry; None for any other."""
    for name in info.get("Names") or ():
        match = _PARKED.match(name)
        if match:
            return match.group(1), int(match.group(2)) / 1000
    return None


def owner_of(info: Mapping[str, Any]) -> str:
    """``host:pid`` of the process using a container (listing entry): the creator's label,
    with the pid of the in-use name once another process claimed it; ``host:`` when parked."""
    label = str((info.get("Labels") or {}).get(OWNER_LABEL, ""))
    host = label.rpartition(":")[0]
    for name in info.get("Names") or ():
        match = _IN_USE.match(name)
        if match:
            return f"{host}:{match.group(1)}"
        if _PARKED.match(name):
            return f"{host}:"
    return label


def _host_of(info: Mapping[str, Any]) -> str:
    return str((info.get("Labels") or {}).get(OWNER_LABEL, "")).rpartition(":")[0]


def claim(api: Any, key: str, count: int) -> list[str]:
    """Up to ``count`` running parked containers of ``key`` on this host, renamed as ours.

    Each is renamed by its parked name (gone once another process took it) and then read
    back: of two processes renaming the same one at once, only the last name holds."""
    if count <= 0:
        return []
    host = socket.gethostname()
    with _CLAIMING:  # threads of one process never race each other
        now = time.time()
        offers = []
        for info in api.containers(filters={"label": LABEL, "name": PARK_PREFIX + key}):
            key_found, expiry = parked(info) or ("", 0.0)
            if key_found == key and expiry - now > CLAIM_MARGIN_S and _host_of(info) == host:
                offers.append((expiry, info["Id"], info["Names"][0].lstrip("/")))
        taken: list[str] = []
        for _expiry, cid, name in sorted(offers, reverse=True):  # the freshest first
            if len(taken) == count:
                break
            ours = in_use_name()
            try:
                api.rename(name, ours)
                if api.inspect_container(cid)["Name"].lstrip("/") != ours:
                    continue
            except Exception:  # claimed by another process, or removed at its expiry
                continue
            taken.append(cid)
        return taken


def park(api: Any, cids: list[str], key: str, keep_warm: float) -> list[str]:
    """Rename ``cids`` as parked for ``keep_warm`` seconds (at most :data:`MAX_PARKED` of
    this key in all); return those not parked, for the caller to remove."""
    if keep_warm <= 0 or not cids:
        return list(cids)
    try:
        already = sum(
            1
            for info in api.containers(filters={"label": LABEL, "name": PARK_PREFIX + key})
            if (found := parked(info)) and found[0] == key
        )
    except Exception:
        return list(cids)
    room = max(0, MAX_PARKED - already)
    expiry = time.time() + keep_warm
    rest = list(cids[room:])
    for cid in cids[:room]:
        try:
            api.rename(cid, parked_name(key, expiry))
        except Exception:
            rest.append(cid)
    if len(rest) < len(cids):
        ensure_attendant()
    return rest


def sweep(api: Any, *, everything: bool = False) -> tuple[int, list[float]]:
    """Remove this host's parked containers that expired (all of them with ``everything``;
    one that stops is removed by the engine, ``auto_remove``); return how many were removed
    and the expiries of those left."""
    host = socket.gethostname()
    now = time.time()
    removed = 0
    left: list[float] = []
    for info in api.containers(all=True, filters={"label": LABEL, "name": PARK_PREFIX}):
        found = parked(info)
        if found is None or _host_of(info) != host:
            continue
        if everything or now > found[1]:
            with contextlib.suppress(Exception):
                api.remove_container(info["Id"], force=True)
                removed += 1
        else:
            left.append(found[1])
    return removed, left


# ------------------------------------------------------------------------------ attendant

_LOCK_NAME = f"\0codeens-sandbox-park-{os.getuid()}"


@contextlib.contextmanager
def _attendant_lock() -> Iterator[bool]:
    """Hold this host's attendant lock (an abstract socket name) if free: yields whether
    it was taken."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(_LOCK_NAME)
        except OSError as exc:
            yield exc.errno != errno.EADDRINUSE  # elsewhere no such lock: go on without
            return
        yield True
    finally:
        sock.close()


def ensure_attendant() -> None:
    """Start the attendant, detached, unless one runs."""
    with _attendant_lock() as free:
        if not free:
            return
    with contextlib.suppress(OSError):
        subprocess.Popen(
            # -I and cwd="/": no folder named codeens in the working directory shadows
            # the installed package.
            [sys.executable, "-I", "-m", "codeens.sandbox.backends.docker_park"],
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )


def attend(api: Any) -> None:
    """Remove parked containers as they expire; return when none are left."""
    while True:
        with _attendant_lock() as mine:
            if not mine:
                return
            while True:
                _removed, left = sweep(api)
                if not left:
                    break
                time.sleep(min(POLL_S, max(0.2, min(left) - time.time() + 0.2)))
        # Lock released: a pool parking from now on starts its own attendant. One that
        # parked just before found the lock held and counts on this one: look once more.
        if not sweep(api)[1]:
            return


def main() -> None:
    import docker

    client = docker.from_env(timeout=30)
    try:
        attend(client.api)
    finally:
        client.close()


if __name__ == "__main__":
    main()
