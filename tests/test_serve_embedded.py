"""The slow one: `codeens serve` with a real model, the embedded default config's smallest
member (Qwen2.5-Coder-0.5B-Instruct, llama.cpp), solving examples/problems/add.py."""

from __future__ import annotations

from pathlib import Path

from serve_fixtures import ADD, client, run_function, serving


def test_slow_embedded_smallest_model_solves_a_stub(tmp_path: Path) -> None:
    config = tmp_path / "codeens.toml"
    # The embedded models (no [[models]]), one sample each; process sandbox.
    config.write_text('samples = 1\n\n[sandbox]\nbackend = "process"\ntimeout = 10.0\n')
    message = [{"role": "user", "content": f"Fill in this stub:\n```python\n{ADD}```"}]
    with serving(config, tmp_path / "log.db", deadline_s=90) as (url, store):
        reply = client(url, timeout=120).chat.completions.create(
            model="qwen-coder-0.5b",
            messages=message,  # type: ignore[arg-type]
            temperature=0.0,
            max_tokens=200,
        )
        info = (reply.model_extra or {})["codeens"]
        generations = store.generations(info["run_id"])
    assert info["status"] == "solved", reply.choices[0].message.content
    assert info["members"] == ["qwen-coder-0.5b"]
    add = run_function(reply.choices[0].message.content or "", "add")
    assert add(123, 877) == 1000 and add(-5, -6) == -11
    assert {g.model for g in generations} == {"qwen-coder-0.5b"}
    assert reply.usage is not None and reply.usage.completion_tokens > 0
