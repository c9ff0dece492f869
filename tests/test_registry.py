"""The registry: entry points and run-time registrations, and their undo."""

from __future__ import annotations

import pytest

from codeens.registry import Registry, UnknownName
from codeens.sandbox.backends.base import SANDBOXES, Sandbox
from codeens.sandbox.backends.process import ProcessSandbox


class Other(ProcessSandbox):
    name = "other"


def test_registered_lasts_for_the_block_only() -> None:
    assert "other" not in SANDBOXES.names()
    with SANDBOXES.registered("other", Other) as obj:
        assert obj is Other and SANDBOXES.get("other") is Other
        assert "other" in SANDBOXES.names()
    assert "other" not in SANDBOXES.names()
    with pytest.raises(UnknownName, match="unknown sandbox backend 'other'"):
        SANDBOXES.get("other")


def test_registered_undoes_on_error_and_restores_what_was_there() -> None:
    registry: Registry[type[Sandbox]] = Registry("codeens.sandboxes", "sandbox backend")
    registry.register("mine", ProcessSandbox)
    with pytest.raises(RuntimeError), registry.registered("mine", Other):
        assert registry.get("mine") is Other
        raise RuntimeError("the test failed inside")
    assert registry.get("mine") is ProcessSandbox
    registry.unregister("mine")
    assert "mine" not in registry.names()


def test_a_run_time_registration_shadows_an_entry_point_until_undone() -> None:
    registry: Registry[type[Sandbox]] = Registry("codeens.sandboxes", "sandbox backend")
    with registry.registered("process", Other):
        assert registry.get("process") is Other
    assert registry.get("process") is ProcessSandbox
    registry.unregister("process")  # entry points are not the registry's to forget
    assert registry.get("process") is ProcessSandbox


def test_check_accepts_registered_names_and_names_the_first_unknown() -> None:
    """What option validators call: entry points and run-time registrations count."""
    assert SANDBOXES.check(["docker", "process"]) == ["docker", "process"]
    with pytest.raises(ValueError, match=r"unknown sandbox backend 'dockr'.*did you mean 'docker'"):
        SANDBOXES.check(["process", "dockr", "other"])
    with SANDBOXES.registered("other", Other):
        assert SANDBOXES.check(["other"]) == ["other"]
    with pytest.raises(ValueError, match="'other'"):
        SANDBOXES.check(["other"])
