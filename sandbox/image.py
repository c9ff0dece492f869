"""Build the local Docker image that sandboxed candidates run in.

Two recipes give the same contract (``python3`` on PATH, ``sh`` and coreutils' ``sleep``,
an empty ``/work`` directory, label ``codeens.sandbox.image=1``):

* ``python-slim``: ``docker build`` from ``python:3.11-slim``, for machines that reach a
  container registry;
* ``debootstrap``: a minimal Debian root file system bootstrapped from the machine's own apt
  mirror and loaded with ``docker import``, for machines that reach no registry.

The engine is reached through the ``docker`` SDK, as the sandbox backend reaches it (same
``DOCKER_HOST`` handling, typed errors instead of exit codes, no ``docker`` program needed);
it is imported on first use, so importing this module costs nothing. The root file system
itself is made by programs the SDK has no part in: debootstrap, and tar, whose output is
streamed into the engine's import.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codeens.errors import first_line

if TYPE_CHECKING:
    from docker import DockerClient

# Bump the tag whenever the recipe changes, so existing machines build the new image.
DEFAULT_IMAGE = "codeens-sandbox:2"
SLIM_BASE = "python:3.11-slim"
DEBIAN_SUITE = "bookworm"
IMAGE_LABEL = "codeens.sandbox.image=1"

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
_SOURCES_LIST = Path("/etc/apt/sources.list")
_PULL_TIMEOUT_S = 30.0
_BUILD_TIMEOUT_S = 1800.0

_DOCKERFILE = f"""\
FROM {SLIM_BASE}
ENV PYTHONDONTWRITEBYTECODE=1
LABEL {IMAGE_LABEL}
RUN pip install --no-cache-dir pytest && mkdir -p /work && chmod 0777 /work
WORKDIR /work
"""

# Paths inside the bootstrapped root file system that a sandbox never needs.
_PRUNE = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/cache/debconf/templates.dat-old",
)


class ImageBuildError(Exception):
    """The sandbox image could not be built; the message is one line for a human."""


def docker_engine_hint() -> str:
    """Return a one-line instruction for users who have no Docker engine answering."""
    return (
        "No Docker engine answers: install one (Debian/Ubuntu: `apt-get install docker.io`, "
        "or Docker Desktop) and start it, or run `bash scripts/bootstrap.sh test` as root."
    )


@contextmanager
def _engine(timeout: float = 60.0) -> Iterator[DockerClient]:
    """A client of the local engine (``timeout``: seconds a reply may stay silent)."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (DockerException, OSError) as exc:
        raise ImageBuildError(docker_engine_hint()) from exc
    try:
        yield client
    finally:
        client.close()


def image_exists(tag: str = DEFAULT_IMAGE) -> bool:
    """Return whether the local Docker engine answers and has an image called ``tag``."""
    try:
        with _engine() as client:
            return _image_id(client, tag) is not None
    except ImageBuildError:
        return False


def _image_id(client: DockerClient, tag: str) -> str | None:
    from docker.errors import DockerException, ImageNotFound

    try:
        image_id: str = client.images.get(tag).id
    except ImageNotFound:
        return None
    except (DockerException, OSError) as exc:
        raise ImageBuildError(f"cannot inspect image {tag}: {first_line(exc)}") from exc
    return image_id


def _first_uri_deb822(text: str) -> str | None:
    for line in text.splitlines():
        match = re.match(r"^\s*URIs:\s*(\S+)", line, flags=re.IGNORECASE)
        if match:
            return match.group(1)
    return None


def _first_uri_one_line(text: str) -> str | None:
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("deb "):
            continue
        rest = stripped[4:].strip()
        if rest.startswith("["):  # options such as [signed-by=...]
            end = rest.find("]")
            if end < 0:
                continue
            rest = rest[end + 1 :].strip()
        if rest:
            return rest.split()[0]
    return None


def debian_mirror() -> str:
    """Return the Debian mirror URI that apt on this machine is configured to use.

    Reads the first ``URIs:`` line of ``/etc/apt/sources.list.d/debian.sources``, or failing
    that the first ``deb`` line of ``/etc/apt/sources.list``.
    """
    for path, parse in (
        (_DEBIAN_SOURCES, _first_uri_deb822),
        (_SOURCES_LIST, _first_uri_one_line),
    ):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        uri = parse(text)
        if uri:
            return uri
    raise ImageBuildError(
        f"No Debian mirror found in {_DEBIAN_SOURCES} or {_SOURCES_LIST}; "
        "configure apt or build with base='python-slim'."
    )


def _run(cmd: Sequence[str], what: str, timeout: float | None = None) -> None:
    """Run ``cmd``; on failure raise ImageBuildError with the last line of its output."""
    try:
        proc = subprocess.run(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ImageBuildError(f"{what} failed: {cmd[0]} not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise ImageBuildError(f"{what} timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}): {_last_line(proc.stdout)}")


def _last_line(output: str | None) -> str:
    lines = [line.strip() for line in (output or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _python_slim_available(client: DockerClient, log: Callable[[str], None]) -> bool:
    """Return whether ``python:3.11-slim`` is present or can be pulled within 30 s."""
    from docker.errors import DockerException

    if _image_id(client, SLIM_BASE) is not None:
        return True
    log(f"checking whether a registry answers (docker pull {SLIM_BASE}) ...")
    deadline = time.monotonic() + _PULL_TIMEOUT_S
    try:
        with _engine(_PULL_TIMEOUT_S) as puller:
            # Leaving the stream early closes the connection, which makes the engine stop.
            for event in puller.api.pull(SLIM_BASE, stream=True, decode=True):
                if "error" in event or time.monotonic() > deadline:
                    return False
    except (ImageBuildError, DockerException, OSError):  # requests' errors are OSErrors
        return False
    return _image_id(client, SLIM_BASE) is not None


def _build_python_slim(tag: str, log: Callable[[str], None]) -> None:
    from docker.errors import DockerException

    with tempfile.TemporaryDirectory(prefix="codeens-image-") as context:
        (Path(context) / "Dockerfile").write_text(_DOCKERFILE, encoding="utf-8")
        log(f"docker build -t {tag} (FROM {SLIM_BASE}) ...")
        try:
            with _engine(_BUILD_TIMEOUT_S) as builder:
                builder.images.build(path=context, tag=tag, rm=True, forcerm=True)
        except (DockerException, OSError) as exc:  # BuildError carries the failing step
            raise ImageBuildError(f"docker build failed: {first_line(exc)}") from exc


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _debootstrap_binary(log: Callable[[str], None]) -> str:
    """Return the debootstrap executable, installing the apt package as root if missing."""
    search = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    found = shutil.which("debootstrap", path=search)
    if found:
        return found
    if not _is_root() or shutil.which("apt-get") is None:
        raise ImageBuildError(
            "debootstrap is missing: install it as root (`apt-get install debootstrap`) "
            "or run `bash scripts/bootstrap.sh test` as root."
        )
    log("installing debootstrap with apt-get ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "debootstrap", "debian-archive-keyring"]
    if subprocess.run(install, env=env, stdin=subprocess.DEVNULL, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, stdin=subprocess.DEVNULL, check=False)
        if subprocess.run(install, env=env, stdin=subprocess.DEVNULL, check=False).returncode:
            raise ImageBuildError("apt-get install debootstrap failed; see the output above.")
    found = shutil.which("debootstrap", path=search)
    if not found:
        raise ImageBuildError("debootstrap was installed but is not on PATH.")
    return found


def _mounts_under(root: Path) -> list[str]:
    """Return mount points below ``root`` (debootstrap mounts /proc and /sys while it runs)."""
    prefix = str(root.resolve()) + "/"
    try:
        lines = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) > 1:
            point = fields[1].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _remove_rootfs(parent: Path, log: Callable[[str], None]) -> None:
    """Delete the temporary root file system, never following a live mount into the host."""
    for point in _mounts_under(parent):
        subprocess.run(["umount", "-l", point], stdin=subprocess.DEVNULL, check=False)
    left = _mounts_under(parent)
    if left:
        log(f"warning: {parent} still has mounts ({', '.join(left)}); leaving it in place")
        return
    shutil.rmtree(parent, ignore_errors=True)


def _prune_rootfs(rootfs: Path) -> None:
    for rel in _PRUNE:
        target = rootfs / rel
        if not target.is_dir() or target.is_symlink():
            continue
        for child in target.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    # The stdlib's __pycache__ stays: the image runs read-only, so without it every
    # interpreter start would compile the modules it imports again.


def import_rootfs(rootfs: Path, tag: str) -> None:
    """Load the directory ``rootfs`` into the engine as image ``tag`` (``docker import``),
    with the sandbox contract's environment, label and working directory."""
    from docker.errors import DockerException

    changes = [
        f"ENV PATH={_PATH}",
        "ENV LANG=C.UTF-8",
        "ENV PYTHONDONTWRITEBYTECODE=1",
        f"LABEL {IMAGE_LABEL}",
        "WORKDIR /work",
    ]
    tar_cmd = ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."]
    with _engine(_BUILD_TIMEOUT_S) as client, tempfile.TemporaryFile() as tar_err:
        try:
            tar = subprocess.Popen(
                tar_cmd, stdout=subprocess.PIPE, stderr=tar_err, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError as exc:
            raise ImageBuildError("tar is missing; install it to build the sandbox image") from exc
        reply = ""
        failure = ""
        try:
            reply = client.api.import_image_from_stream(tar.stdout, repository=tag, changes=changes)
        except (DockerException, OSError) as exc:
            failure = first_line(exc)
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar_rc = tar.wait()
        events = _events(reply)
        # A tar killed by the pipe the engine closed did not cause the failure: report that.
        if tar_rc > 0 or (tar_rc < 0 and not failure):
            # The engine imports whatever part of the stream it got (nothing at all makes an
            # empty image): the tag must not name it, or the next build would keep it.
            for event in events:
                if str(event.get("status", "")).startswith("sha256:"):
                    with suppress(DockerException):
                        client.images.remove(event["status"], force=True)
            tar_err.seek(0)
            message = _last_line(tar_err.read().decode("utf-8", "replace"))
            raise ImageBuildError(f"tar of the root file system failed: {message}")
    errors = [" ".join(str(e["error"]).split()) for e in events if e.get("error")]
    failure = failure or (errors[0] if errors else "")
    if failure:
        raise ImageBuildError(f"docker import failed: {failure}")


def _events(reply: Any) -> list[dict[str, Any]]:
    """The engine's JSON progress lines. An import that fails once its reply has begun still
    answers HTTP 200, with the error in these lines; the last one names the new image."""
    events = []
    for line in str(reply or "").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _build_debootstrap(tag: str, log: Callable[[str], None]) -> None:
    if not _is_root():
        raise ImageBuildError(
            "Building the sandbox image with debootstrap needs root; run "
            "`bash scripts/bootstrap.sh test` as root, or use a machine that reaches a registry."
        )
    debootstrap = _debootstrap_binary(log)
    mirror = debian_mirror()
    parent = Path(tempfile.mkdtemp(prefix="codeens-rootfs-"))
    rootfs = parent / "rootfs"
    try:
        log(f"debootstrap --variant=minbase {DEBIAN_SUITE} with python3 (about a minute) ...")
        started = time.monotonic()
        _run(
            [
                debootstrap,
                "--variant=minbase",
                "--include=python3,python3-pytest",
                DEBIAN_SUITE,
                str(rootfs),
                mirror,
            ],
            "debootstrap",
            timeout=3600,
        )
        log(f"debootstrap done in {time.monotonic() - started:.0f} s")
        _prune_rootfs(rootfs)
        work = rootfs / "work"
        work.mkdir(exist_ok=True)
        work.chmod(0o777)
        rootfs.chmod(0o755)
        for tool in ("usr/bin/python3", "bin/sh", "bin/sleep"):
            if not os.path.lexists(rootfs / tool):
                raise ImageBuildError(f"the bootstrapped root file system lacks /{tool}")
        log(f"docker import -> {tag} ...")
        started = time.monotonic()
        import_rootfs(rootfs, tag)
        log(f"docker import done in {time.monotonic() - started:.0f} s")
    finally:
        _remove_rootfs(parent, log)


def build_image(
    tag: str = DEFAULT_IMAGE,
    base: str = "auto",
    force: bool = False,
    log: Callable[[str], None] = print,
) -> str:
    """Build the sandbox image ``tag`` and return how: "existing", "python-slim" or "debootstrap".

    ``base`` is "python-slim" (``docker build`` from ``python:3.11-slim``; needs a registry),
    "debootstrap" (a minimal Debian from the apt mirror, loaded with ``docker import``; needs
    root) or "auto" (python-slim when that base is present or a registry answers, otherwise
    debootstrap). An existing image is kept unless ``force`` is true.
    """
    if base not in ("auto", "python-slim", "debootstrap"):
        raise ImageBuildError(f"unknown base {base!r}; use auto, python-slim or debootstrap")
    from docker.errors import DockerException

    with _engine() as client:
        old_id = _image_id(client, tag)
        if old_id is not None and not force:
            log(f"image {tag} already exists")
            return "existing"
        if base == "auto":
            base = "python-slim" if _python_slim_available(client, log) else "debootstrap"
            log(f"building {tag} from {base}")
        started = time.monotonic()
        if base == "python-slim":
            _build_python_slim(tag, log)
        else:
            _build_debootstrap(tag, log)
        new_id = _image_id(client, tag)
        if new_id is None:
            raise ImageBuildError(f"the build reported success but image {tag} is missing")
        if old_id is not None and old_id != new_id:
            # The replaced image is now untagged; drop it unless something still uses it.
            try:
                client.images.remove(old_id)
            except DockerException:
                pass
    log(f"image {tag} built from {base} in {time.monotonic() - started:.0f} s")
    return base
