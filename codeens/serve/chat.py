"""Plain chat (no stub in the message): the strategy's text-level form, unverified.

- ``moa``: every proposer (its ``proposers`` option, else every member) answers; the
  aggregator (its ``aggregator`` option, else the most expensive member) reads their
  answers and writes the reply, as in Mixture-of-Agents.
- ``cascade``: the cheapest member answers (nothing to verify, so nothing to escalate on).
- every other strategy: the first configured member answers; a member's name: that member.

``n`` choices are ``n`` samples of the answering model (seeds ``seed .. seed+n-1``). Every
completion is logged as a generation of the request's run (target ``chat``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from pydantic import ValidationError

from codeens.errors import first_line
from codeens.models.base import ModelConfig, Prompt
from codeens.recorder import Recorder
from codeens.serve.answer import Answer
from codeens.serve.errors import ApiError
from codeens.serve.job import Job, Shared
from codeens.serve.runs import finish_run, start_run
from codeens.strategies.cascade import order_models
from codeens.strategies.interface import Sample
from codeens.strategies.moa import MoaOptions, default_aggregator

AGGREGATE = (
    "You have been given the responses of several assistants to the user's latest "
    "message. Some of them may be wrong. Evaluate them critically, then write one "
    "accurate, complete reply to the user in your own words; do not mention the other "
    "responses."
)


def speakers(job: Job) -> tuple[list[ModelConfig], ModelConfig]:
    """The proposers (none unless MoA) and the model whose samples are the choices."""
    members = list(job.members)
    if job.route.strategy == "moa" and len(members) > 1:
        try:
            options = MoaOptions.model_validate(job.config.strategies.get("moa", {}))
        except ValidationError as exc:
            raise ApiError(500, f"[strategies.moa]: {exc}", kind="server_error") from exc
        by_name = {m.name: m for m in members}
        proposers = [by_name[n] for n in options.proposers or by_name if n in by_name]
        aggregator = by_name.get(options.aggregator or "") or default_aggregator(members)
        return proposers or members, aggregator
    if job.route.strategy == "cascade":
        return [], order_models(members)[0]
    return [], members[0]


def aggregate_prompt(messages: Sequence[dict[str, str]], answers: Sequence[str]) -> Prompt:
    """The aggregator's prompt: the answers in a system message, then the conversation."""
    numbered = "\n\n".join(f"Response {i}:\n{text}" for i, text in enumerate(answers, 1))
    system = {"role": "system", "content": f"{AGGREGATE}\n\n{numbered}"}
    return conversation_prompt([system, *messages])


def conversation_prompt(messages: Sequence[dict[str, str]]) -> Prompt:
    """Chat models get the messages; a base model continues the last user message."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    return Prompt(tuple(messages), users[-1] if users else "")


def request_messages(job: Job) -> list[dict[str, str]]:
    # "developer" is the newer name OpenAI gives the system role; chat templates know "system".
    return [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text}
        for m in job.request.messages
    ]


def answer_chat(shared: Shared, job: Job) -> Answer:
    """Ask, log, answer; the run row is written first and completed last."""
    started = time.monotonic()
    proposers, answerer = speakers(job)
    names = list(dict.fromkeys([*(m.name for m in proposers), answerer.name]))
    strategy = job.route.strategy or "member"
    run = start_run(shared.store, job.run_id, job.route.name, strategy, names, job.config)
    generator = shared.generator.for_run(job.run_id)
    recorder = Recorder(shared.store, job.run_id)
    messages = request_messages(job)
    seed = job.config.seed
    drawn: list[Sample] = []
    status = "failed"
    try:
        proposals: list[Sample] = []
        for model in proposers:
            job.progress.update(f"{model.name} proposing an answer")
            try:
                got = generator.sample(model, conversation_prompt(messages), 1, seed)
            except Exception as exc:  # a failed proposer leaves the others to aggregate
                job.progress.note(f"model {model.name} failed: {first_line(exc)}")
                continue
            proposals += [Sample(model, g, origin="chat:proposer") for g in got]
        recorder.samples(proposals, "chat")
        drawn += proposals
        if proposals:  # no proposer answered: the aggregator answers on its own
            prompt = aggregate_prompt(messages, [s.text for s in proposals])
            job.progress.update(f"{answerer.name} aggregating {len(proposals)} answer(s)")
        else:
            prompt = conversation_prompt(messages)
            job.progress.update(f"{answerer.name} answering")
        try:
            got = generator.sample(answerer, prompt, job.request.n, seed)
        except Exception as exc:
            raise ApiError(
                502, f"model {answerer.name} failed: {first_line(exc)}", kind="server_error"
            ) from exc
        answers = [Sample(answerer, g, origin="chat") for g in got]
        recorder.samples(answers, "chat")
        drawn += answers
        status = "unverified"
    finally:
        finish_run(
            shared.store,
            run,
            status=status,
            wall_s=time.monotonic() - started,
            input_tokens=sum(s.generated.input_tokens for s in drawn),
            output_tokens=sum(s.generated.output_tokens for s in drawn),
            cost=sum(s.cost for s in drawn),
            summary_json=json.dumps({"mode": "chat", "model": job.route.name, "by": answerer.name}),
        )
    contributed = [m.name for m in proposers if any(s.model.name == m.name for s in proposals)]
    return Answer(
        run_id=job.run_id,
        mode="chat",
        status=status,
        strategy=strategy,
        members=tuple(dict.fromkeys([*contributed, answerer.name])),
        contents=tuple(s.text for s in answers),
        prompt_tokens=sum(s.generated.input_tokens for s in drawn),
        completion_tokens=sum(s.generated.output_tokens for s in drawn),
        cost=sum(s.cost for s in drawn),
    )
