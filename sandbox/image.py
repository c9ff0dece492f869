"""Build the local Docker image that sandboxed candidates run in.

Two recipes give the same contract (``python3`` on PATH, ``sh`` and coreutils' ``sleep``,
an empty ``/work`` directory, label ``codeens.sandbox.image=1``):

* ``python-slim``: ``docker build`` from ``python:3.11-slim``, for machines that reach a
  container registry;
* ``debootstrap``: a minimal Debian root file system bootstrapped from the machine's own apt
  mirror and loaded with ``docker import``, for machines that reach no registry.

Only the ``docker`` command line is used here, never the ``docker`` SDK, so importing this
module costs nothing and works without the SDK installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Bump the tag whenever the recipe changes, so existing machines build the new image.
DEFAULT_IMAGE = "codeens-sandbox:2"
SLIM_BASE = "python:3.11-slim"
DEBIAN_SUITE = "bookworm"
IMAGE_LABEL = "codeens.sandbox.image=1"

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
_SOURCES_LIST = Path("/etc/apt/sources.list")
_PULL_TIMEOUT_S = 30.0

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


def _docker_cli() -> str:
    docker = shutil.which("docker")
    if docker is None:
        raise ImageBuildError(docker_engine_hint())
    return docker


def image_exists(tag: str = DEFAULT_IMAGE) -> bool:
    """Return whether the local Docker engine has an image called ``tag``."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        proc = subprocess.run(
            [docker, "image", "inspect", tag],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _image_id(docker: str, tag: str) -> str | None:
    try:
        proc = subprocess.run(
            [docker, "image", "inspect", "--format", "{{.Id}}", tag],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


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


def _python_slim_available(docker: str, log: Callable[[str], None]) -> bool:
    """Return whether ``python:3.11-slim`` is present or can be pulled quickly."""
    if image_exists(SLIM_BASE):
        return True
    log(f"checking whether a registry answers (docker pull {SLIM_BASE}) ...")
    try:
        proc = subprocess.run(
            [docker, "pull", "-q", SLIM_BASE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            timeout=_PULL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _build_python_slim(docker: str, tag: str, log: Callable[[str], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="codeens-image-") as context:
        (Path(context) / "Dockerfile").write_text(_DOCKERFILE, encoding="utf-8")
        log(f"docker build -t {tag} (FROM {SLIM_BASE}) ...")
        _run([docker, "build", "-q", "-t", tag, context], "docker build", timeout=1800)


def _engine_answers(docker: str) -> bool:
    try:
        proc = subprocess.run(
            [docker, "info"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


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


def _import_rootfs(docker: str, rootfs: Path, tag: str) -> None:
    changes = [
        f"ENV PATH={_PATH}",
        "ENV LANG=C.UTF-8",
        "ENV PYTHONDONTWRITEBYTECODE=1",
        f"LABEL {IMAGE_LABEL}",
        "WORKDIR /work",
    ]
    import_cmd = [docker, "import"]
    for change in changes:
        import_cmd += ["--change", change]
    import_cmd += ["-", tag]
    tar_cmd = ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."]
    with tempfile.TemporaryFile() as tar_err:
        try:
            tar = subprocess.Popen(
                tar_cmd, stdout=subprocess.PIPE, stderr=tar_err, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError as exc:
            raise ImageBuildError("tar is missing; install it to build the sandbox image") from exc
        try:
            imported = subprocess.run(
                import_cmd,
                stdin=tar.stdout,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                timeout=1800,
                check=False,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar_rc = tar.wait()
        if tar_rc != 0:
            tar_err.seek(0)
            message = _last_line(tar_err.read().decode("utf-8", "replace"))
            raise ImageBuildError(f"tar of the root file system failed: {message}")
    if imported.returncode != 0:
        raise ImageBuildError(f"docker import failed: {_last_line(imported.stdout)}")


def _build_debootstrap(docker: str, tag: str, log: Callable[[str], None]) -> None:
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
        _import_rootfs(docker, rootfs, tag)
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
    docker = _docker_cli()
    if not _engine_answers(docker):
        raise ImageBuildError(docker_engine_hint())
    old_id = _image_id(docker, tag)
    if old_id is not None and not force:
        log(f"image {tag} already exists")
        return "existing"
    if base == "auto":
        base = "python-slim" if _python_slim_available(docker, log) else "debootstrap"
        log(f"building {tag} from {base}")
    started = time.monotonic()
    if base == "python-slim":
        _build_python_slim(docker, tag, log)
    else:
        _build_debootstrap(docker, tag, log)
    new_id = _image_id(docker, tag)
    if new_id is None:
        raise ImageBuildError(f"the build reported success but image {tag} is missing")
    if old_id is not None and old_id != new_id:
        # The replaced image is now untagged; drop it unless something still uses it.
        subprocess.run(
            [docker, "image", "rm", old_id],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    log(f"image {tag} built from {base} in {time.monotonic() - started:.0f} s")
    return base
