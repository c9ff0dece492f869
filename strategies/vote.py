"""``vote``: pass rate on the visible tests, then execution agreement on generated tests.

1. Every distinct candidate runs on the visible tests; its pass rate is the primary key and
   nothing below overrides it: only candidates with the top pass rate can be chosen.
2. When several candidates share the top pass rate, the models write extra tests
   (:mod:`codeens.strategies.gentests`) and every candidate that imports runs on them
   (CodeT's dual execution agreement). Candidates are grouped by identical visible
   behaviour and identical pass/fail vector on the generated tests; a group scores
   (generated tests its members pass) x sqrt(its size in samples), CodeT's released variant.
3. A generated test that most executed candidates (distinct programs that import) fail is
   *suspect*: usually its expected value is wrong. Suspect tests get weight 0 in the score,
   so a minority that happens to agree with wrong tests cannot outvote the rest; they still
   take part in the grouping (programs that differ on them do behave differently). They are
   listed in the trace.
4. The best group among those with the top visible pass rate wins (groups tied on score
   and size are pooled); inside it, CodeBERTScore consensus when available, then the number
   of duplicate samples, then shorter code.

Without usable generated tests (disabled, not needed, or no model wrote any) this is the
plain vote: pass rate, then behaviour-group size, then duplicates, then shorter code.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from codeens.errors import first_line
from codeens.sandbox.errors import SandboxInputError
from codeens.sandbox.results import Verdict
from codeens.sandbox.testfile import parse_test_suite
from codeens.strategies.base import Decision, Strategy
from codeens.strategies.behaviour import behaviour_key, group_sizes
from codeens.strategies.gentests import generate_tests
from codeens.strategies.interface import Candidate, Context

NO_IMPORT = (Verdict.ERROR, Verdict.INFRA_ERROR)
SUSPECT_WEIGHT = 0.0


def rank_by_pass_rate(
    candidates: list[Candidate], include_unexecuted: bool = False
) -> list[dict[str, Any]]:
    """Every executed candidate with its score components, best first.

    With ``include_unexecuted`` (no visible tests) the others count with pass rate 0.
    """
    sizes = group_sizes(candidates)
    rows: list[dict[str, Any]] = []
    for candidate in candidates:
        if candidate.result is None and not include_unexecuted:
            continue
        rows.append(
            {
                "candidate": candidate.hash[:12],
                "models": candidate.models,
                "pass_rate": round(candidate.result.pass_rate, 6) if candidate.result else 0.0,
                "group_size": sizes[behaviour_key(candidate)],
                "duplicates": len(candidate.samples),
                "length": len(candidate.code),
                "record": candidate,
            }
        )
    rows.sort(key=_order)
    return rows


def _order(row: dict[str, Any]) -> tuple[float, int, int, int, str]:
    return (
        -row["pass_rate"],
        -row["group_size"],
        -row["duplicates"],
        row["length"],
        row["candidate"],
    )


@dataclass(eq=False)
class _Group:
    members: list[Candidate]
    pass_rate: float
    vector: tuple[bool, ...]
    size: int = 0
    passed: int = 0
    weighted: float = 0.0
    score: float = 0.0
    eligible: bool = False

    def row(self) -> dict[str, Any]:
        return {
            "candidates": [m.hash[:12] for m in self.members],
            "models": sorted({name for m in self.members for name in m.models}),
            "visible_pass_rate": round(self.pass_rate, 6),
            "size": self.size,
            "generated_passed": self.passed,
            "suspect_passed": sum(self.vector) - self.passed,
            "score": round(self.score, 6),
            "eligible": self.eligible,
        }


@dataclass
class _Agreement:
    tests: list[dict[str, Any]] = field(default_factory=list)
    groups: list[_Group] = field(default_factory=list)


def _vectors(
    ctx: Context, candidates: list[Candidate], tests: list[str]
) -> tuple[dict[Candidate, tuple[bool, ...]], list[Candidate]]:
    """Pass/fail per generated test for every candidate; and those that imported."""
    suite = parse_test_suite("\n".join(tests), "generated tests")
    # A program that does not import fails every test the same way: no need to run it.
    runnable = [c for c in candidates if c.result is None or c.result.verdict not in NO_IMPORT]
    results = ctx.run_suite(runnable, suite)
    vectors = {c: (False,) * len(tests) for c in candidates}
    imported: list[Candidate] = []
    for candidate, result in results.items():
        if result.verdict in NO_IMPORT:
            continue
        imported.append(candidate)
        # Cases run in order; missing outcomes (a timeout cut the run short) are failures.
        outcomes = [t.outcome == "passed" for t in result.tests[: len(tests)]]
        vectors[candidate] = tuple(outcomes + [False] * (len(tests) - len(outcomes)))
    return vectors, imported


def agreement(ctx: Context, candidates: list[Candidate], tests: list[str]) -> _Agreement:
    """Run the generated tests; mark suspect ones; group and score the candidates."""
    vectors, imported = _vectors(ctx, candidates, tests)
    out = _Agreement()
    weights: list[float] = []
    for i, test in enumerate(tests):
        passed_by = sum(1 for c in imported if vectors[c][i])
        failed_by = len(imported) - passed_by
        suspect = failed_by * 2 > len(imported)
        weights.append(SUSPECT_WEIGHT if suspect else 1.0)
        out.tests.append(
            {"test": test, "passed_by": passed_by, "failed_by": failed_by, "suspect": suspect}
        )
    by_key: dict[tuple[object, ...], _Group] = {}
    for candidate in candidates:
        vector = vectors[candidate]
        key = (behaviour_key(candidate) if candidate.result else ("no visible tests",), vector)
        rate = candidate.result.pass_rate if candidate.result else 0.0
        group = by_key.setdefault(key, _Group([], rate, vector))
        group.members.append(candidate)
    top = max(g.pass_rate for g in by_key.values())
    for group in by_key.values():
        group.size = sum(max(1, len(m.samples)) for m in group.members)
        group.passed = sum(1 for ok, w in zip(group.vector, weights, strict=True) if ok and w)
        group.weighted = sum(w for ok, w in zip(group.vector, weights, strict=True) if ok)
        group.score = group.weighted * math.sqrt(group.size)
        group.eligible = group.pass_rate == top
    out.groups = sorted(
        by_key.values(),
        key=lambda g: (not g.eligible, -round(g.score, 9), -g.size, g.members[0].hash),
    )
    return out


def _consensus(codes: list[str]) -> tuple[list[float] | None, str]:
    """CodeBERTScore consensus per code, or None and why it is not available."""
    try:
        module = importlib.import_module("codeens.strategies.codebertscore")
        scores = [float(s) for s in module.consensus_scores(codes)]
    except Exception as exc:  # missing module, model or dependency: use the fallback
        return None, f"{type(exc).__name__}: {first_line(exc)}"
    if len(scores) != len(codes) or not all(math.isfinite(s) for s in scores):
        return None, "consensus_scores returned an unusable result"
    return scores, ""


def pick_within(members: list[Candidate]) -> tuple[Candidate, dict[str, Any]]:
    """One candidate of an agreeing group: consensus, then duplicates, then shorter code."""
    if len(members) == 1:
        return members[0], {"by": "only candidate"}
    scores, why_not = _consensus([m.code for m in members])
    if scores is None:
        order = sorted(members, key=lambda m: (-len(m.samples), len(m.code), m.hash))
        return order[0], {
            "by": "duplicates, then shorter code",
            "codebertscore": f"unavailable ({why_not})",
        }
    score_of = {m.hash: s for m, s in zip(members, scores, strict=True)}
    order = sorted(
        members, key=lambda m: (-round(score_of[m.hash], 9), -len(m.samples), len(m.code), m.hash)
    )
    return order[0], {
        "by": "codebertscore consensus, then duplicates, then shorter code",
        "consensus": {m.hash[:12]: round(score_of[m.hash], 6) for m in members},
    }


class Vote(Strategy):
    """Visible pass rate first; execution agreement on generated tests among the best."""

    name = "vote"
    summary = "visible-test pass rate, then CodeT agreement on model-written tests (default)"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        generated_tests: int = Field(
            10, ge=0, le=100, description="Tests asked of each model; 0 disables them."
        )
        test_samples: int = Field(1, ge=1, le=20, description="Test-writing completions per model.")

    options: Options

    def solve(self, ctx: Context) -> Decision:
        candidates = ctx.sample_all()
        ranked = rank_by_pass_rate(candidates, include_unexecuted=ctx.suite is None)
        trace: dict[str, Any] = {
            "scores": [{k: v for k, v in r.items() if k != "record"} for r in ranked],
        }
        if not ranked:
            trace["why"] = "no candidate to choose from"
            return Decision(None, trace)
        top = [r for r in ranked if r["pass_rate"] == ranked[0]["pass_rate"]]
        plain: Candidate = ranked[0]["record"]
        if self.options.generated_tests == 0:
            return self._plain(plain, trace, "skipped", "disabled (generated_tests = 0)")
        if len(top) == 1:
            why = "not needed: one candidate has the top visible pass rate"
            return self._plain(plain, trace, "skipped", why)
        generated = generate_tests(ctx, self.options.generated_tests, self.options.test_samples)
        info: dict[str, Any] = {"status": "used"} | generated.summary()
        trace["generated_tests"] = info
        if not generated.tests:
            info["status"] = "none usable"
            trace["why"] = "no model yielded usable tests: plain pass-rate vote"
            return Decision(plain, trace)
        try:
            result = agreement(ctx, candidates, generated.tests)
        except SandboxInputError as exc:  # cannot happen for parsed asserts; stay safe
            info["status"] = f"unusable ({exc})"
            trace["why"] = "generated tests could not run: plain pass-rate vote"
            return Decision(plain, trace)
        info["tests"] = result.tests
        info["suspect_treatment"] = (
            f"a test failed by most executed candidates is suspect: weight {SUSPECT_WEIGHT:g} "
            "in the score; it still splits groups"
        )
        trace["groups"] = [g.row() for g in result.groups]
        best = result.groups[0]
        tied = [
            g
            for g in result.groups
            if g.eligible and round(g.score, 9) == round(best.score, 9) and g.size == best.size
        ]
        chosen, tie_break = pick_within([m for g in tied for m in g.members])
        trace["tie_break"] = tie_break
        trace["chosen"] = {
            "candidate": chosen.hash[:12],
            "group": next(i for i, g in enumerate(result.groups) if chosen in g.members),
            "pooled_groups": len(tied),
        }
        trace["why"] = (
            f"best execution-agreement score {round(best.score, 6)} "
            f"({best.weighted:g} generated tests x sqrt({best.size} samples)) among groups with "
            f"the top visible pass rate {round(best.pass_rate, 6)}"
            + (f"; {len(tied)} tied groups pooled" if len(tied) > 1 else "")
        )
        return Decision(chosen, trace)

    @staticmethod
    def _plain(chosen: Candidate, trace: dict[str, Any], status: str, reason: str) -> Decision:
        trace["generated_tests"] = {"status": status, "reason": reason}
        trace["why"] = f"plain pass-rate vote; generated tests {reason}"
        return Decision(chosen, trace)
