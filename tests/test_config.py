"""codeens.toml's [sandbox] table: backend options, limits, overrides, older spellings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeens.config import Config, ConfigError, SandboxConfig, load_config, override
from codeens.sandbox.backends.docker import DockerSandbox
from codeens.sandbox.backends.process import ProcessSandbox
from codeens.sandbox.image import DEFAULT_IMAGE
from codeens.sandbox.results import Limits


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "codeens.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_default_limits_are_the_sandboxs_own() -> None:
    assert SandboxConfig().limits() == Limits()
    assert SandboxConfig(timeout=2.5, memory_mb=64).limits() == Limits(timeout=2.5, memory_mb=64)


def test_backend_options_open_the_backend_without_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, '[sandbox]\nworkers = 3\n[sandbox.options.docker]\nimage = "mine:1"\n')
    config, _ = load_config(path)
    with config.sandbox.open() as box:  # no container starts before the first run
        assert isinstance(box, DockerSandbox)
        assert (box.image, box.workers, box.limits) == ("mine:1", 3, Limits())
    process = override(config, {"sandbox.backend": "process"})
    with process.sandbox.open() as box:  # docker's options stay docker's
        assert isinstance(box, ProcessSandbox) and box.workers == 3
    assert process.sandbox.warning() is not None and config.sandbox.warning() is None


def test_a_backends_keys_may_sit_directly_under_sandbox(tmp_path: Path) -> None:
    config, _ = load_config(write(tmp_path, '[sandbox]\nimage = "old:2"\n'))
    assert config.sandbox.options == {"docker": {"image": "old:2"}}
    with config.sandbox.open() as box:
        assert isinstance(box, DockerSandbox) and box.image == "old:2"
    with Config().sandbox.open() as box:
        assert isinstance(box, DockerSandbox) and box.image == DEFAULT_IMAGE


def test_configs_recorded_by_older_versions_still_load() -> None:
    """Eval runs keep their config as JSON; older ones carry `"image": null` for any backend."""
    for backend in ("docker", "process"):
        old = {"backend": backend, "workers": 2, "timeout": 5.0, "memory_mb": 512, "image": None}
        config = Config.model_validate_json(json.dumps({"sandbox": old}))
        assert config.sandbox.options == {}
        again = Config.model_validate_json(config.model_dump_json())
        assert again.sandbox == config.sandbox


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sandbox]\ntimout = 5\n", "unknown key 'sandbox.timout'"),
        ('[sandbox]\nbackend = "process"\nimage = "x"\n', "unknown key 'sandbox.image'"),
        ("[sandbox.options.docker]\nimag = 'x'\n", "sandbox.options: docker: unknown key 'imag'"),
        ("[sandbox.options.dockr]\n", "unknown sandbox backend 'dockr'"),
        ("[sandbox]\ntimeout = 0\n", "sandbox.timeout: Input should be greater than 0"),
    ],
)
def test_bad_sandbox_tables_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^config .*codeens\.toml: ") as caught:
        load_config(write(tmp_path, text))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_override_replaces_dotted_keys_and_keeps_the_limits() -> None:
    config = Config()
    changed = override(config, {"seed": 7, "sandbox.workers": 5, "samples": None})
    assert (changed.seed, changed.sandbox.workers, changed.samples) == (7, 5, config.samples)
    assert override(config, {"samples": None}) is config
    with pytest.raises(ConfigError, match=r"sandbox\.workers: Input should be less than or equal"):
        override(config, {"sandbox.workers": 65})
