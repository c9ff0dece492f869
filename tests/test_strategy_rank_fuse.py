"""``rank-fuse`` end to end: recorded generations (``replay``), the real sandbox, a real log.

The judge's and the fuser's prompts show how the candidates ran, so their recordings are
keyed by prompts built with the strategy's own builders from candidates really executed in
the process sandbox (whose driver is the Docker one's). A prompt the strategy built any
other way would find nothing recorded: the model would fail, and the trace would say so.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from codeens.config import load_config
from codeens.extract import extract_function, normalize
from codeens.models.base import Completion
from codeens.models.replay import record
from codeens.problem import Problem, fill, load_problem
from codeens.progress import Progress
from codeens.prompts import solve_prompt
from codeens.sandbox.backends.base import Candidate as Program
from codeens.sandbox.backends.process import ProcessSandbox
from codeens.sandbox.results import Limits
from codeens.sandbox.testfile import parse_test_suite
from codeens.solve import solve
from codeens.storage import Store
from codeens.strategies.comparators import COMPARATORS, Preference
from codeens.strategies.gentests import prompt_for_tests
from codeens.strategies.interface import Candidate
from codeens.strategies.moa_prompts import Reference, layer_prompt
from codeens.strategies.pair_judge import judge_prompt, read_letter
from codeens.strategies.rank_fuse import RankFuse
from codeens.strategies.rank_fuse_options import RankFuseOptions
from conftest import REPO, run_cli

pytestmark = pytest.mark.docker
TIMEOUT = 3.0


def fenced(body: str) -> str:
    return f"```python\ndef add(a, b):\n    {body}\n```"


CORRECT = fenced("return a + b")
ABS = fenced("return abs(a + b)")  # passes 2 of the 3 visible tests
TIMES = fenced("return a * b")  # passes 1 of 3
MINUS = fenced("return a - b")  # passes 1 of 3, with other values than a * b
LOOKUP = fenced("return {(2, 3): 5, (-4, 1): -3}.get((a, b), 0)")  # the visible tests only
ONE_OFF = fenced("return 0 if a == 1 else a + b")  # visible tests pass; add(1, 2) fails
GENERATED = "```python\nassert add(1, 2) == 3\nassert add(-5, 2) == -3\n```"


class Workspace:
    """add.py, one chat replay model ``alpha``, and the prompts the strategy will build."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        tmp.mkdir(exist_ok=True)
        self.problem_path = tmp / "add.py"
        shutil.copy(REPO / "examples" / "problems" / "add.py", self.problem_path)
        self.problem: Problem = load_problem(self.problem_path)
        self.stub = self.problem.stubs[0]
        self.tests = self.problem.tests_for(self.stub.name)
        self.recording = tmp / "alpha.jsonl"

    def say(
        self, prompt: str, outputs: list[str], logprobs: list[float | None] | None = None
    ) -> None:
        for seed, text in enumerate(outputs):
            logprob = logprobs[seed] if logprobs else None
            record(self.recording, "alpha", prompt, seed, Completion(text, 50, 20, logprob))

    def samples(self, outputs: list[str], logprobs: list[float | None] | None = None) -> None:
        prompt = solve_prompt(self.problem, self.stub, self.tests).text_for(True)
        self.say(prompt, outputs, logprobs)

    def executed(self, text: str) -> Candidate:
        """The candidate ``text`` becomes, run on the visible tests."""
        code = extract_function(text, self.stub)
        assert code is not None, text
        digest = hashlib.sha256(normalize(code).encode()).hexdigest()
        program = fill(self.problem, {self.stub.name: code}, keep_tests=False)
        with ProcessSandbox(Limits(timeout=TIMEOUT)) as box:
            result = box.run(Program("c.py", program), parse_test_suite(self.tests))
        return Candidate(digest, code, program, result=result)

    def judge(self, first: str, second: str, answer: str) -> None:
        """Record the judge's answer when ``first`` is shown as A and ``second`` as B."""
        pair = judge_prompt(self.stub.prompt_text, self.executed(first), self.executed(second))
        self.say(pair.text_for(True), [answer])

    def fuser(self, top: list[str], output: str) -> None:
        shown = [Reference(c.code, c.result) for c in map(self.executed, top)]
        prompt = layer_prompt(self.problem, self.stub, self.tests, shown, 1200)
        self.say(prompt.text_for(True), [output])

    def written_tests(self, output: str) -> None:
        prompt = prompt_for_tests(self.problem, self.stub, self.tests, 10)
        self.say(prompt.text_for(True), [output])

    def config(self, options: str, samples: int) -> Path:
        path = self.tmp / "codeens.toml"
        path.write_text(
            f"samples = {samples}\n[sandbox]\ntimeout = {TIMEOUT}\nworkers = 2\n"
            f"[strategies.rank-fuse]\n{options}\n"
            f'[[models]]\nname = "alpha"\nbackend = "replay"\nlocation = "{self.recording}"\n'
            "price_output_per_mtok = 1.0\n"
        )
        return path

    def solve(self, options: str, samples: int, db: str = "log.db") -> tuple[int, dict[str, Any]]:
        proc = run_cli(
            "solve", str(self.problem_path), "--strategy", "rank-fuse", "--config",
            str(self.config(options, samples)), "--db", str(self.tmp / db), "--json",
            cwd=self.tmp,
        )  # fmt: skip
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode in (0, 1), proc.stderr
        data: dict[str, Any] = json.loads(proc.stdout)
        assert data["failures"] == {}, "a prompt was asked that has no recording"
        return proc.returncode, data

    def short(self, text: str) -> str:
        return self.executed(text).hash[:12]


def logged(db: Path) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """(origin, code) of every generation, and the logged trace."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT origin, coalesce(code, '') FROM generations ORDER BY id")
        generations = [(o, c) for o, c in rows.fetchall()]
        trace = json.loads(conn.execute("SELECT trace_json FROM decisions").fetchone()[0])
    return generations, trace


def test_execution_decides_first_and_the_cli_runs(tmp_path: Path, sandbox_image: str) -> None:
    ws = Workspace(tmp_path)
    # log-probabilities alone would pick a * b: execution comes first and decides every pair.
    ws.samples([ABS, TIMES, CORRECT], [-1.0, -0.1, -3.0])
    code, data = ws.solve("fuse = false", samples=3)
    assert code == 0 and "return a + b" in data["solution"]
    trace = data["trace"]["add"]
    right, abs_, times = ws.short(CORRECT), ws.short(ABS), ws.short(TIMES)
    assert trace["considered"] == [right, abs_, times] and trace["left_out"] == 0
    assert trace["comparators"] == ["execution", "judge", "logprob"]
    assert [c["decided_by"] for c in trace["comparisons"]] == ["execution"] * 3
    assert [c["winner"] for c in trace["comparisons"]] == [right, right, abs_]
    assert trace["comparisons"][0]["notes"] == {"execution": "3 vs 2 visible tests passed"}
    assert trace["wins"] == {right: 2, abs_: 1, times: 0}
    assert trace["chosen"] == data["chosen"]["add"]["candidate"] == right
    assert trace["fusion"] == {"status": "skipped: disabled (fuse = false)"}
    generations, stored = logged(tmp_path / "log.db")
    assert stored == trace and [o for o, _ in generations] == ["sample"] * 3  # no judge asked


def test_the_judge_decides_where_execution_ties_asked_in_both_orders(
    tmp_path: Path, sandbox_image: str
) -> None:
    # Both pass every visible test; the lookup table is sampled twice and has the better
    # log-probability, so without the judge it would be first and would win.
    outputs, logprobs = [LOOKUP, CORRECT, LOOKUP], [-0.1, -2.0, -0.1]
    fair = Workspace(tmp_path / "fair")
    fair.samples(outputs, logprobs)
    fair.judge(LOOKUP, CORRECT, "B")
    fair.judge(CORRECT, LOOKUP, "A.")
    code, data = fair.solve("fuse = false", samples=3)
    trace = data["trace"]["add"]
    right, lookup = fair.short(CORRECT), fair.short(LOOKUP)
    assert trace["considered"] == [lookup, right]
    [comparison] = trace["comparisons"]
    assert comparison["decided_by"] == "judge" and comparison["winner"] == right
    assert comparison["notes"]["execution"] == "3 vs 3 visible tests passed"
    assert comparison["notes"]["judge"] == "votes 0 vs 2 from alpha in both orders"
    assert "logprob" not in comparison["notes"]
    assert code == 0 and "return a + b" in data["solution"] and trace["chosen"] == right
    assert trace["spent"]["judge"]["generations"] == 2
    with sqlite3.connect(fair.tmp / "log.db") as conn:
        asked = conn.execute("SELECT prompt FROM generations WHERE origin = 'pair-judge'")
        prompts = [p for (p,) in asked.fetchall()]
    # Both orders, each showing both programs with their visible-test outcomes.
    assert len(prompts) == 2 and prompts[0] != prompts[1]
    assert all(p.count("(visible tests: passed 3/3 tests)") == 2 for p in prompts)

    # A judge that always answers "A" votes once for each: the pair is left to logprob.
    biased = Workspace(tmp_path / "biased")
    biased.samples(outputs, logprobs)
    biased.judge(LOOKUP, CORRECT, "A")
    biased.judge(CORRECT, LOOKUP, "A")
    _, data = biased.solve("fuse = false", samples=3)
    [comparison] = data["trace"]["add"]["comparisons"]
    assert comparison["notes"]["judge"] == "votes 1 vs 1 from alpha in both orders"
    assert comparison["decided_by"] == "logprob" and comparison["winner"] == lookup
    assert data["trace"]["add"]["chosen"] == lookup


def test_the_fused_program_replaces_the_winner_when_it_passes_more(
    tmp_path: Path, sandbox_image: str
) -> None:
    ws = Workspace(tmp_path)
    ws.samples([TIMES, ABS])
    ws.fuser([ABS, TIMES], CORRECT)
    ws.written_tests(GENERATED)
    code, data = ws.solve('comparators = ["execution"]\nfuse_top_k = 2', samples=2)
    trace = data["trace"]["add"]
    fusion = trace["fusion"]
    assert trace["winner"] == ws.short(ABS)
    assert fusion["model"] == "alpha" and fusion["fused_from"] == [ws.short(ABS), ws.short(TIMES)]
    assert fusion["fused"] == {"candidate": ws.short(CORRECT), "origin": "fused"}
    assert fusion["visible_passed"] == {"fused": 3, "winner": 2}
    assert fusion["generated_passed"] == {"fused": 2, "winner": 1}
    assert fusion["generated_tests"]["tests"] == [
        "assert add(1, 2) == 3",
        "assert add(-5, 2) == -3",
    ]
    assert fusion["status"] == "replaced winner"
    assert code == 0 and "return a + b" in data["solution"]
    assert trace["chosen"] == data["chosen"]["add"]["candidate"] == ws.short(CORRECT)
    generations, stored = logged(tmp_path / "log.db")
    assert stored == trace
    assert [o for o, _ in generations] == ["sample", "sample", "fused", "tests"]
    with sqlite3.connect(tmp_path / "log.db") as conn:
        # Visible runs of the three programs; the fused one and the winner on the written tests.
        assert conn.execute("SELECT count(*) FROM executions").fetchone() == (5,)


def test_a_fused_program_that_passes_fewer_written_tests_does_not_replace_the_winner(
    tmp_path: Path, sandbox_image: str
) -> None:
    ws = Workspace(tmp_path)
    ws.samples([ABS, CORRECT])
    ws.fuser([CORRECT, ABS], ONE_OFF)
    ws.written_tests(GENERATED)
    code, data = ws.solve('comparators = ["execution"]', samples=2)
    fusion = data["trace"]["add"]["fusion"]
    assert fusion["fused"]["candidate"] == ws.short(ONE_OFF)
    assert fusion["visible_passed"] == {"fused": 3, "winner": 3}  # the visible tests alone tie
    assert fusion["generated_passed"] == {"fused": 1, "winner": 2}
    assert fusion["status"] == "kept winner"
    assert fusion["why"] == "fused passes fewer generated tests (1 < 2)"
    assert code == 0 and "return a + b" in data["solution"]
    assert data["chosen"]["add"]["candidate"] == ws.short(CORRECT)

    # Without written tests the tie on the visible tests goes to the fused program.
    _, data = ws.solve('comparators = ["execution"]\ngenerated_tests = 0', 2, db="blind.db")
    assert data["trace"]["add"]["fusion"]["status"] == "replaced winner"
    assert "a == 1" in data["solution"]


def test_more_visible_tests_do_not_make_up_for_fewer_written_ones(
    tmp_path: Path, sandbox_image: str
) -> None:
    ws = Workspace(tmp_path)
    ws.samples([ABS, TIMES])
    ws.fuser([ABS, TIMES], ONE_OFF)
    ws.written_tests("```python\nassert add(1, 2) == 3\nassert add(2, 2) == 4\n```")
    code, data = ws.solve('comparators = ["execution"]', samples=2)
    fusion = data["trace"]["add"]["fusion"]
    # Summed, 3 + 1 ties 2 + 2 and the fused program would be taken; each count on its own.
    assert fusion["visible_passed"] == {"fused": 3, "winner": 2}
    assert fusion["generated_passed"] == {"fused": 1, "winner": 2}
    assert fusion["status"] == "kept winner"
    assert code == 1 and data["chosen"]["add"]["candidate"] == ws.short(ABS)


def test_full_and_bubble_rank_the_same_case(tmp_path: Path, sandbox_image: str) -> None:
    ws = Workspace(tmp_path)
    ws.samples([CORRECT, ABS, TIMES, MINUS], [-1.0, -0.5, -0.2, -2.0])
    right, abs_, times, minus = map(ws.short, (CORRECT, ABS, TIMES, MINUS))
    # logprob alone: a * b > abs(a + b) > a + b > a - b, against the prior order by pass rate.
    options = 'comparators = ["logprob"]\nfuse = false\naggregate = '

    _, full = ws.solve(options + '"full"', 4, db="full.db")
    trace = full["trace"]["add"]
    assert trace["considered"][:2] == [right, abs_]
    assert len(trace["comparisons"]) == 6
    assert all(c["decided_by"] == "logprob" for c in trace["comparisons"])
    assert [r["candidate"] for r in trace["ranking"]] == [times, abs_, right, minus]
    assert trace["wins"] == {times: 3, abs_: 2, right: 1, minus: 0}

    _, bubble = ws.solve(options + '"bubble"', 4, db="bubble.db")
    trace = bubble["trace"]["add"]
    assert [c["pair"][0] for c in trace["comparisons"]][1:] == [abs_, right]
    assert [c["winner"] for c in trace["comparisons"]] == [times] * 3
    # One pass: only the first place is sorted; a + b and abs(a + b) keep the prior order.
    assert [r["candidate"] for r in trace["ranking"]] == [times, right, abs_, minus]
    assert trace["wins"] == {times: 3, right: 0, abs_: 0, minus: 0}
    assert full["trace"]["add"]["chosen"] == bubble["trace"]["add"]["chosen"] == times

    # The cap: only the two best by visible pass rate are compared.
    _, capped = ws.solve(options + '"full"\nmax_candidates = 2', 4, db="capped.db")
    trace = capped["trace"]["add"]
    assert trace["considered"] == [right, abs_] and trace["left_out"] == 2
    assert trace["chosen"] == abs_ and len(trace["comparisons"]) == 1


def test_a_comparator_plugin_is_registered_used_and_unregistered(
    tmp_path: Path, sandbox_image: str
) -> None:
    def longer(ctx: Any, a: Candidate, b: Candidate, options: Any) -> Preference:
        if len(a.code) == len(b.code):
            return Preference(None, "same length")
        return Preference("a" if len(a.code) > len(b.code) else "b", "longer code")

    ws = Workspace(tmp_path)
    ws.samples([CORRECT, LOOKUP])
    config, _ = load_config(ws.config("", samples=2))
    with pytest.raises(ValueError, match="unknown comparator 'longer'"):
        RankFuseOptions(comparators=["longer"])
    COMPARATORS.register("longer", longer)
    try:
        assert "longer" in COMPARATORS.names()
        strategy = RankFuse({"comparators": ["longer"], "fuse": False})
        report = solve(
            ws.problem, config, models=config.models, strategy=strategy, samples=2,
            store=Store(tmp_path / "log.db"), progress=Progress(enabled=False),
        )  # fmt: skip
    finally:
        COMPARATORS.unregister("longer")
    decision = report.targets[0].decision
    assert decision.chosen is not None and decision.chosen.hash[:12] == ws.short(LOOKUP)
    [comparison] = decision.trace["comparisons"]
    assert comparison["decided_by"] == "longer" and comparison["notes"] == {"longer": "longer code"}
    assert "longer" not in COMPARATORS.names()
    with pytest.raises(ValueError, match="unknown comparator 'longer'"):
        RankFuseOptions(comparators=["longer"])


def test_bad_options_end_in_one_line(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.samples([CORRECT])
    for options, message in [
        ('aggregate = "sideways"', "[strategies.rank-fuse] aggregate: Input should be 'full'"),
        ('comparators = ["judg"]', "did you mean 'judge'?"),
        ('fuser = "omega"', "unknown model 'omega' in [strategies.rank-fuse] fuser"),
    ]:
        proc = run_cli(
            "solve", str(ws.problem_path), "--strategy", "rank-fuse",
            "--config", str(ws.config(options, 1)), cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr


def test_judge_answers_are_read_as_letters() -> None:
    assert read_letter("B") == "B"
    assert read_letter("Answer: A.") == "A"
    assert read_letter("Program B is correct") == "B"
    assert read_letter("a or b? neither") is None
