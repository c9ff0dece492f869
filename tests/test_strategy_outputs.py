"""Output signatures: what a program returns on each input, read from the real sandbox."""

from __future__ import annotations

from codeens.sandbox.backends.base import Candidate
from codeens.sandbox.backends.docker import DockerSandbox
from codeens.sandbox.results import Limits
from codeens.strategies.outputs import SENTINEL, Signature, probe_suite, signature_of

PROGRAM = """
class Box:
    pass


def f(i):
    if i == 0:
        return {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}
    if i == 1:
        return {"b": [1, 2.5, (3, None)], "a": frozenset({"x", "y"})}
    if i == 2:
        return "x" * 300 + "tail one"
    if i == 3:
        return "x" * 300 + "tail two"
    if i == 4:
        return Box()
    if i == 5:
        return f"{SENTINEL}"
    if i == 6:
        raise KeyError(i)
    while True:
        pass
""".replace("{SENTINEL}", SENTINEL)
CALLS = [f"f({i})" for i in range(8)] + ["f(0)"]


def _signature(image: str) -> Signature:
    # A fresh sandbox each time: a new driver process with its own hash seed.
    box = DockerSandbox(Limits(timeout=3.0, memory_mb=256), workers=1, image=image)
    try:
        return signature_of(box.run(Candidate("candidate.py", PROGRAM), probe_suite(CALLS)), 9)
    finally:
        box.close()


def test_outputs_are_canonical_across_processes(sandbox_image: str) -> None:
    first, second = _signature(sandbox_image), _signature(sandbox_image)
    assert first == second
    assert first[0] == "set{'alpha','beta','delta','epsilon','gamma','zeta'}"
    assert first[1] == "dict{'a':frozenset{'x','y'},'b':list[1,2.5,tuple[3,None]]}"
    # Past the sandbox's 200-character messages: a prefix and a digest keep them apart.
    assert first[2] != first[3] and " sha256:" in first[2] and len(first[2]) < 120
    assert first[4] == "<candidate.Box object>"  # no address: equal across runs
    assert first[5] == repr(SENTINEL)  # returning the sentinel is still an output
    # Raised: no output; timed out: no output there and none after (the run was cut).
    assert first[6:] == (None, None, None)
