"""The sandbox image builder against the real engine, on a tag of its own.

The full debootstrap build (about a minute) is what ``scripts/bootstrap.sh`` runs on every
fresh machine; here the engine half of it, ``import_rootfs``, loads the root file system of
the existing sandbox image under a test tag and the result is checked like a build.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from codeens.sandbox.image import (
    DEFAULT_IMAGE,
    ImageBuildError,
    build_image,
    image_exists,
    import_rootfs,
)

pytestmark = pytest.mark.docker

TEST_TAG = "codeens-sandbox-test:import"


@pytest.fixture
def rootfs(sandbox_image: str, tmp_path: Path) -> Path:
    """The sandbox image's files, unpacked as debootstrap would leave them."""
    client = docker.from_env()
    container = client.containers.create(sandbox_image, command=["true"])
    try:
        tarball = tmp_path / "rootfs.tar"
        with tarball.open("wb") as out:
            for chunk in container.export():
                out.write(chunk)
    finally:
        container.remove(force=True)
        client.close()
    root = tmp_path / "rootfs"
    root.mkdir()
    subprocess.run(["tar", "-x", "-f", str(tarball), "-C", str(root)], check=True)
    tarball.unlink()
    return root


@pytest.fixture
def test_tag() -> Iterator[str]:
    yield TEST_TAG
    client = docker.from_env()
    try:
        client.images.remove(TEST_TAG, force=True)
    except docker.errors.ImageNotFound:
        pass
    finally:
        client.close()


def test_imported_rootfs_keeps_the_sandbox_contract(rootfs: Path, test_tag: str) -> None:
    assert not image_exists(test_tag)
    import_rootfs(rootfs, test_tag)
    assert image_exists(test_tag)
    client = docker.from_env()
    try:
        config = client.images.get(test_tag).attrs["Config"]
        out = client.containers.run(
            test_tag,
            ["sh", "-c", 'python3 -c "print(6 * 7)" && pwd && sleep 0'],
            network_mode="none",
            remove=True,
        )
    finally:
        client.close()
    assert config["Labels"] == {"codeens.sandbox.image": "1"}
    assert config["WorkingDir"] == "/work"
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"] and "LANG=C.UTF-8" in config["Env"]
    assert out.decode().split() == ["42", "/work"]


def test_a_failed_tar_is_one_line_and_leaves_no_image(tmp_path: Path, test_tag: str) -> None:
    with pytest.raises(ImageBuildError) as caught:
        import_rootfs(tmp_path / "missing", test_tag)
    assert str(caught.value).startswith("tar of the root file system failed: ")
    assert "\n" not in str(caught.value)
    assert not image_exists(test_tag)


def test_an_existing_image_is_kept(sandbox_image: str) -> None:
    lines: list[str] = []
    assert build_image(sandbox_image, log=lines.append) == "existing"
    assert lines == [f"image {DEFAULT_IMAGE} already exists"]


def test_an_unknown_base_is_refused_before_the_engine_is_asked() -> None:
    with pytest.raises(ImageBuildError, match="unknown base 'alpine'"):
        build_image(TEST_TAG, base="alpine")
