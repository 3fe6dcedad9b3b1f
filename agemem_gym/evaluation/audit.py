"""The reward audit: scripted policies that try to game the memory and context terms, next to honest memory use.

An RL environment is only as good as its reward, and RL finds every hole in it. Each policy here sees only what
an agent sees (``info["messages"]``, ``info["tool_results"]`` and ``info["stage"]``, never the task), so what it
earns it could earn from the env's text interface alone. :func:`reward_audit` runs them over the same tasks and
tabulates every reward term with memory quality, so a reader sees which term a degenerate policy tries to move.

The policies, grouped by what they show:

- references: ``honest`` (stores every sentence it is told as its own memory, headed by its topic, filters each
  stage-2 message out of its context, retrieves with the question), ``honest_lead`` (the same, keeping only the
  first two sentences of each paragraph), ``no_memory`` (no tool ever), ``random`` (random tools and text, a
  floor) and the privileged ``oracle``;
- degenerate policies that must earn less than the honest policy holding the same information (:data:`REFERENCE`):
  ``blob_update`` (one memory grown by Update with the first two sentences of every paragraph, retrieved with
  top_k=1: the exploit of the old reward; against ``honest_lead``),
  ``padding_blob`` (one memory holding every paragraph), ``keyword_soup`` (each paragraph as a bag of its
  distinct content words), ``min_retrieval`` (``honest`` retrieving top_k=1), ``stage1_retrieval`` (retrieves
  with every stage-1 message and never with the question), ``verbose_answer`` (answers with everything it
  retrieved), ``summary_wipe`` (summarises the whole context into one word before answering),
  ``title_stuffing`` (heads every note with every topic seen, as gold titles count as gold words),
  ``hindsight_trim`` (deletes every memory it did not retrieve once the question is known), ``duplicate_notes``
  (every note added twice), ``question_rewrite`` (once the question is known, prefixes every memory with it,
  then retrieves), ``hedge_answer`` (answers with a list of candidates, which token F1 pays for: see
  :func:`agemem_gym.rewards.gated_recall`, the default that does not), ``seed_swap`` (in an episode started with memories, re-adds what the
  store holds and deletes the originals before the question; against ``seed_aware``, which adds only what the
  store lacks; measured with ``memories=gold_notes``);
- cosmetic variants of ``honest`` that must earn nothing over it: ``cosmetic_update`` (appends " Noted." to each
  memory), ``add_then_delete`` (adds a junk memory each stage-1 turn, deletes them all in stage 2),
  ``inflating_summary`` (replaces each stage-2 message with a longer "summary" instead of filtering it),
  ``stage3_adds`` (re-adds what it retrieved, and the question, before answering), ``repeat_retrieval``
  (retrieves the same query three times).

Every policy answers with :func:`~agemem_gym.evaluation.agents.heuristic_answer` over what it retrieved (or, with
``reader="none"``, always "unknown", which holds the task term fixed so that only the shaping terms differ).

>>> import gymnasium as gym, agemem_gym
>>> env = gym.make("AgeMem-Synthetic-v0")
>>> table = reward_audit(env, ["honest", "blob_update"], episodes=2)
>>> [row["policy"] for row in table]
['honest', 'blob_update']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from agemem_gym.errors import ConfigError
from agemem_gym.evaluation.agents import (
    _OPTIONS,
    OraclePolicy,
    Policy,
    RandomPolicy,
    _question,
    answer,
    heuristic_answer,
    tool_call,
)
from agemem_gym.prompts import _OPENERS
from agemem_gym.task import Task
from agemem_gym.text import content_words, split_sentences

__all__ = [
    "ANSWER_GAMES",
    "AUDIT_POLICIES",
    "COSMETIC_VARIANTS",
    "DEGENERATE_POLICIES",
    "REFERENCE",
    "SEEDED_GAMES",
    "AuditPolicy",
    "audit_table",
    "gold_notes",
    "make_audit_policy",
    "reward_audit",
]

Reader = Literal["heuristic", "none"]
Call = tuple[str, Mapping[str, Any]]
Turn = list[Call] | Callable[[], list[Call]]  # a callable is planned when it is played (it may need new ids)

_MAX_CALLS = 8  # ProtocolConfig.max_calls_per_turn's default


_OPENER = re.compile("|".join(re.escape(o).replace(re.escape("{title}"), "(.+?)") for o in _OPENERS) + "$")


def _shared(user: str) -> list[tuple[str, str]]:
    """(title, text) of each paragraph a stage-1/2 user message shares: each part is an opener line naming the
    topic, then the text; the last part is a closing remark."""
    out = []
    for part in user.split("\n\n")[:-1]:
        opener, _, text = part.partition("\n")
        m = _OPENER.match(opener.strip())
        title = next((g for g in m.groups() if g), "") if m else ""
        if text.strip():
            out.append((title, text.strip()))
    return out


def _paragraphs(user: str) -> list[str]:
    return [text for _, text in _shared(user)]


def _chunks(calls: Sequence[Call]) -> list[Turn]:
    return [list(calls[i : i + _MAX_CALLS]) for i in range(0, len(calls), _MAX_CALLS)]


class AuditPolicy:
    """The honest reference policy, and the base of every audit policy (override the ``plan_*`` hooks).

    Stage 1: each sentence of each shared paragraph becomes one ``Add_memory``, headed by the paragraph's topic
    as the user named it ("Mabeni Viaduct: It was completed in 1843."), so that a sentence that says "it" can
    still be found (at most 8 calls a turn).
    Stage 2: ``Filter_context`` with the message's own text as the criteria removes the distractor message.
    Stage 3: ``Retrieve_memory`` with the question (``top_k``), then an answer read from the retrieved memories.
    """

    name = "honest"

    def __init__(self, *, top_k: int = 3, reader: Reader = "heuristic") -> None:
        if reader not in ("heuristic", "none"):
            raise ConfigError(f"'reader' must be 'heuristic' or 'none', got {reader!r}")
        self.top_k = top_k
        self.reader: Reader = reader
        self.reset({})

    # ---- state the policy keeps from what it is shown ----
    def reset(self, info: Mapping[str, Any]) -> None:
        self.queue: list[Turn] = []
        self.ids: list[str] = []  # live memory ids it added, in order
        self.contents: dict[str, str] = {}  # id -> content as the policy last wrote it
        self.hits: list[str] = []  # contents retrieved in stage 3
        self.junk: list[str] = []
        self.titles: set[str] = set()  # topics it put in front of its notes ("Title: sentence")
        self.stage = 1

    def _observe(self, info: Mapping[str, Any]) -> None:
        for r in info.get("tool_results", []):
            data = r.get("data") or {}
            if not r.get("ok"):
                continue
            if r["name"] == "Add_memory" and data.get("action") == "added":
                self.ids.append(data["id"])
                self.contents[data["id"]] = data["content"]
                if data["content"].startswith("Misc note"):
                    self.junk.append(data["id"])
            elif r["name"] == "Update_memory":
                self.contents[data["id"]] = data["content"]
            elif r["name"] == "Delete_memory" and data.get("deleted"):
                self.ids = [i for i in self.ids if i != data["id"]]
            elif r["name"] == "Retrieve_memory" and info.get("stage") == 3:
                self.hits += [h["content"] for h in data.get("hits", [])]

    # ---- the hooks ----
    def plan_stage1(self, user: str) -> list[Turn]:
        return _chunks([("Add_memory", {"content": note}) for note in self._notes(user, None)])

    def _notes(self, user: str, lead: int | None) -> list[str]:
        """Each sentence (or the first ``lead``) of each shared paragraph, headed by the paragraph's topic."""
        notes = []
        for title, text in _shared(user):
            self.titles.add(title)
            notes += [f"{title}: {s}" if title else s for s in split_sentences(text)[:lead]]
        return notes

    def plan_stage2(self, user: str) -> list[Turn]:
        return [[("Filter_context", {"criteria": user})]]

    def plan_stage3(self, question: str) -> list[Turn]:
        return [[("Retrieve_memory", {"query": question, "top_k": self.top_k})]]

    def final_answer(self, question: str, info: Mapping[str, Any]) -> str:
        if self.reader == "none":
            return "unknown"
        return heuristic_answer(question, [self._unheaded(h) for h in self.hits])

    def _unheaded(self, note: str) -> str:
        title, sep, rest = note.partition(": ")
        return rest if sep and title in self.titles else note

    # ---- the loop ----
    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        self._observe(info)
        messages = info.get("messages", [])
        stage = int(info.get("stage", 1))
        self.stage = stage
        if messages and messages[-1].get("role") == "user":
            user = str(messages[-1].get("content", ""))
            self.queue = (
                self.plan_stage1(user)
                if stage == 1
                else self.plan_stage2(user)
                if stage == 2
                else self.plan_stage3(_question(info))
            )
        while self.queue:
            turn = self.queue.pop(0)
            calls = turn() if callable(turn) else turn
            if calls:
                return tool_call(*calls[:_MAX_CALLS])
        if stage < 3:
            return answer("Thanks for sharing!")
        return answer(self.final_answer(_question(info), info), "I answer from what I retrieved.")


# ---- degenerate policies ----


class NoMemory(AuditPolicy):
    """Never calls a tool; answers from whatever its (reset, distractor-filled) context still holds."""

    name = "no_memory"

    def plan_stage1(self, user: str) -> list[Turn]:
        return []

    def plan_stage2(self, user: str) -> list[Turn]:
        return []

    def plan_stage3(self, question: str) -> list[Turn]:
        return []

    def final_answer(self, question: str, info: Mapping[str, Any]) -> str:
        if self.reader == "none":
            return "unknown"
        return heuristic_answer(question, [m["content"] for m in info.get("messages", [])[1:-1]])


class HonestLead(AuditPolicy):
    """``honest`` storing only the first two sentences of each paragraph: the selection ``blob_update`` makes,
    stored the honest way (its reference: the blob must earn less than the same notes kept apart)."""

    name = "honest_lead"

    def plan_stage1(self, user: str) -> list[Turn]:
        return _chunks([("Add_memory", {"content": note}) for note in self._notes(user, 2)])


class BlobUpdate(AuditPolicy):
    """One memory grown by Update with the first two sentences of every paragraph; retrieved with top_k=1."""

    name = "blob_update"
    lead = 2

    def _lead(self, user: str) -> str:
        return " ".join(s for p in _paragraphs(user) for s in split_sentences(p)[: self.lead])

    def plan_stage1(self, user: str) -> list[Turn]:
        text = self._lead(user)

        def grow() -> list[Call]:
            if not self.ids:
                return [("Add_memory", {"content": text})]
            mid = self.ids[0]
            return [("Update_memory", {"memory_id": mid, "content": f"{self.contents[mid]} {text}"})]

        return [grow]

    def plan_stage3(self, question: str) -> list[Turn]:
        return [[("Retrieve_memory", {"query": question, "top_k": 1})]]


class PaddingBlob(BlobUpdate):
    """One memory holding every paragraph it was told, whole."""

    name = "padding_blob"
    lead = 1000


class KeywordSoup(AuditPolicy):
    """Each paragraph stored as the bag of its distinct content words (no sentences, no order)."""

    name = "keyword_soup"

    def plan_stage1(self, user: str) -> list[Turn]:
        soups = [" ".join(dict.fromkeys(content_words(p))) for p in _paragraphs(user)]
        return _chunks([("Add_memory", {"content": s}) for s in soups if s])


class MinRetrieval(AuditPolicy):
    """``honest`` with top_k=1."""

    name = "min_retrieval"

    def plan_stage3(self, question: str) -> list[Turn]:
        return [[("Retrieve_memory", {"query": question, "top_k": 1})]]


class Stage1Retrieval(AuditPolicy):
    """Stores like ``honest``, retrieves with every stage-1 message (before any question exists), never after."""

    name = "stage1_retrieval"

    def plan_stage1(self, user: str) -> list[Turn]:
        return [*super().plan_stage1(user), [("Retrieve_memory", {"query": user[:500], "top_k": 5})]]

    def plan_stage3(self, question: str) -> list[Turn]:
        return []


class VerboseAnswer(AuditPolicy):
    """``honest``, but the answer is everything it retrieved (wins any metric that verbosity can win)."""

    name = "verbose_answer"

    def final_answer(self, question: str, info: Mapping[str, Any]) -> str:
        return " ".join(self.hits)[:4000] or "unknown"


class SummaryWipe(AuditPolicy):
    """``honest``, then one Summary_context(span="all", summary="ok") just before answering (maximal compression)."""

    name = "summary_wipe"

    def plan_stage3(self, question: str) -> list[Turn]:
        return [*super().plan_stage3(question), [("Summary_context", {"span": "all", "summary": "ok"})]]


class TitleStuffing(AuditPolicy):
    """``honest``, every note headed by every topic seen so far (gold titles count as gold words for purity)."""

    name = "title_stuffing"

    def plan_stage1(self, user: str) -> list[Turn]:
        shared = _shared(user)
        self.titles.update(t for t, _ in shared)
        head = " / ".join(sorted(self.titles))
        notes = [f"{head}: {s}" for _, text in shared for s in split_sentences(text)]
        return _chunks([("Add_memory", {"content": n}) for n in notes])


class HindsightTrim(AuditPolicy):
    """``honest``, then, once the question is asked, deletes every memory it did not retrieve."""

    name = "hindsight_trim"

    def plan_stage3(self, question: str) -> list[Turn]:
        def trim() -> list[Call]:
            drop = [m for m in self.ids if self.contents.get(m) not in self.hits][:_MAX_CALLS]
            return [("Delete_memory", {"memory_id": m, "confirmation": True}) for m in drop]

        return [*super().plan_stage3(question), trim, trim, trim]


# ---- cosmetic variants of honest ----


class CosmeticUpdate(AuditPolicy):
    """``honest`` plus an Update that appends " Noted." to every memory it added in the turn before."""

    name = "cosmetic_update"

    def plan_stage1(self, user: str) -> list[Turn]:
        turns = super().plan_stage1(user)
        seen = len(self.ids)

        def touch() -> list[Call]:
            fresh = self.ids[seen:]
            return [("Update_memory", {"memory_id": m, "content": f"{self.contents[m]} Noted."}) for m in fresh]

        return [*turns, touch] if turns else turns


class AddThenDelete(AuditPolicy):
    """``honest`` plus one junk memory per stage-1 message, all deleted at the first stage-2 message."""

    name = "add_then_delete"

    def plan_stage1(self, user: str) -> list[Turn]:
        junk: list[Call] = [("Add_memory", {"content": f"Misc note {len(self.ids)}: the user seems friendly."})]
        return [junk, *super().plan_stage1(user)]

    def plan_stage2(self, user: str) -> list[Turn]:
        def drop() -> list[Call]:
            return [("Delete_memory", {"memory_id": m, "confirmation": True}) for m in self.junk if m in self.ids]

        return [drop, *super().plan_stage2(user)]


class InflatingSummary(AuditPolicy):
    """``honest``, but each stage-2 message is "summarised" into a longer text instead of filtered."""

    name = "inflating_summary"

    def plan_stage2(self, user: str) -> list[Turn]:
        return [[("Summary_context", {"span": "1", "summary": f"Summary: {user} In other words: {user}"})]]


class Stage3Adds(AuditPolicy):
    """``honest``, then re-adds what it retrieved and the question itself before answering."""

    name = "stage3_adds"

    def plan_stage3(self, question: str) -> list[Turn]:
        def readd() -> list[Call]:
            calls: list[Call] = [("Add_memory", {"content": f"Again: {h}"}) for h in self.hits[: _MAX_CALLS - 1]]
            return [*calls, ("Add_memory", {"content": question})]

        return [*super().plan_stage3(question), readd]


class DuplicateNotes(AuditPolicy):
    """``honest``, every note added twice (with the store's near-duplicate check off, its default)."""

    name = "duplicate_notes"

    def plan_stage1(self, user: str) -> list[Turn]:
        return _chunks([("Add_memory", {"content": n}) for n in self._notes(user, None) for _ in range(2)])


class QuestionRewrite(AuditPolicy):
    """``honest``, but once the question is known it rewrites every memory it wrote to begin with the question's
    words (closer to the query, and edits after the question are not maintenance), then retrieves."""

    name = "question_rewrite"

    def plan_stage3(self, question: str) -> list[Turn]:
        def rewrite(batch: int) -> Turn:
            def calls() -> list[Call]:
                ids = self.ids[batch * _MAX_CALLS : (batch + 1) * _MAX_CALLS]
                return [("Update_memory", {"memory_id": m, "content": f"{question} {self.contents[m]}"}) for m in ids]

            return calls

        return [rewrite(b) for b in range(4)] + super().plan_stage3(question)


class HedgeAnswer(AuditPolicy):
    """``honest``, but the answer lists its candidates: both options of an "X or Y" question, else what the
    reader makes of all its hits and of each hit alone (token F1 pays recall at any precision; the default gated
    recall pays nothing for an answer with a word the gold lacks)."""

    name = "hedge_answer"

    def final_answer(self, question: str, info: Mapping[str, Any]) -> str:
        if self.reader == "none":
            return "unknown"
        hits = [self._unheaded(h) for h in self.hits]
        options = _OPTIONS.search(question)
        if options:
            return ", ".join(o.strip() for o in options.groups())
        found = [heuristic_answer(question, hits), *(heuristic_answer(question, [h]) for h in hits)]
        return ", ".join(list(dict.fromkeys(c for c in found if c != "unknown"))[:3]) or "unknown"


class SeedAware(AuditPolicy):
    """For an episode that starts with memories: looks up each stage-1 paragraph first (Retrieve_memory, top_k=5)
    and adds only the notes the store does not already hold; otherwise ``honest``."""

    name = "seed_aware"

    def reset(self, info: Mapping[str, Any]) -> None:
        super().reset(info)
        self.foreign: dict[str, str] = {}  # id -> content of memories found in the store that it did not write
        self.dropped: set[str] = set()

    def _observe(self, info: Mapping[str, Any]) -> None:
        super()._observe(info)
        for r in info.get("tool_results", []):
            if r.get("ok") and r["name"] == "Retrieve_memory":
                for hit in (r.get("data") or {}).get("hits", []):
                    if hit["id"] not in self.contents:
                        self.foreign[hit["id"]] = hit["content"]

    def _look(self, user: str) -> Turn:
        calls: list[Call] = [("Retrieve_memory", {"query": text, "top_k": 5}) for text in _paragraphs(user)]
        return calls[:_MAX_CALLS]

    def plan_stage1(self, user: str) -> list[Turn]:
        notes = self._notes(user, None)

        def new(batch: int) -> Turn:
            def calls() -> list[Call]:
                known = set(self.foreign.values())
                fresh = [n for n in notes if n not in known]
                return [("Add_memory", {"content": n}) for n in fresh[batch * _MAX_CALLS : (batch + 1) * _MAX_CALLS]]

            return calls

        return [self._look(user), *(new(b) for b in range((len(notes) + _MAX_CALLS - 1) // _MAX_CALLS))]


class SeedSwap(SeedAware):
    """Looks up the store like ``seed_aware``, then adds its own copy of every note (storage used to pay for the
    copies) and deletes the memories it found in stage 2, before the question (maintenance used to pay for
    removing the duplicates it made)."""

    name = "seed_swap"

    def plan_stage1(self, user: str) -> list[Turn]:
        return [self._look(user), *AuditPolicy.plan_stage1(self, user)]

    def plan_stage2(self, user: str) -> list[Turn]:
        def drop() -> list[Call]:
            ids = [m for m in self.foreign if m not in self.dropped][:_MAX_CALLS]
            self.dropped.update(ids)
            return [("Delete_memory", {"memory_id": m, "confirmation": True}) for m in ids]

        return [drop, drop, *super().plan_stage2(user)]


def gold_notes(task: Task) -> list[str]:
    """Memories for ``reset(options={"memories": ...})``: what ``honest`` would have stored of the task's gold
    paragraphs in an earlier session (for the seeded audit; the harness reads the task, the policies do not)."""
    return [f"{p.title}: {s}" for p in task.gold_paragraphs for s in split_sentences(p.text)]


class RepeatRetrieval(AuditPolicy):
    """``honest``, retrieving the same query three times."""

    name = "repeat_retrieval"

    def plan_stage3(self, question: str) -> list[Turn]:
        turn = super().plan_stage3(question)
        return turn * 3


_AUDIT: dict[str, type[AuditPolicy]] = {
    cls.name: cls
    for cls in (
        AuditPolicy,
        HonestLead,
        NoMemory,
        BlobUpdate,
        PaddingBlob,
        KeywordSoup,
        MinRetrieval,
        Stage1Retrieval,
        VerboseAnswer,
        SummaryWipe,
        TitleStuffing,
        HindsightTrim,
        CosmeticUpdate,
        AddThenDelete,
        InflatingSummary,
        Stage3Adds,
        RepeatRetrieval,
        DuplicateNotes,
        QuestionRewrite,
        HedgeAnswer,
        SeedAware,
        SeedSwap,
    )
}
DEGENERATE_POLICIES: tuple[str, ...] = (
    "blob_update",
    "padding_blob",
    "keyword_soup",
    "min_retrieval",
    "stage1_retrieval",
    "verbose_answer",
    "summary_wipe",
    "title_stuffing",
    "hindsight_trim",
    "duplicate_notes",
    "question_rewrite",
    "hedge_answer",
    "seed_swap",
)
COSMETIC_VARIANTS: tuple[str, ...] = (
    "cosmetic_update",
    "add_then_delete",
    "inflating_summary",
    "stage3_adds",
    "repeat_retrieval",
)
ANSWER_GAMES: tuple[str, ...] = ("verbose_answer", "hedge_answer")
"""Degenerate policies that game the answer metric, not a shaping term: measured with answers read (with
``reader="none"`` they answer like their reference)."""
SEEDED_GAMES: tuple[str, ...] = ("seed_swap",)
"""Degenerate policies that game an episode started with memories: measured with ``memories=gold_notes``."""
AUDIT_POLICIES: tuple[str, ...] = (
    "oracle",
    "honest",
    "honest_lead",
    "seed_aware",
    "no_memory",
    "random",
    *DEGENERATE_POLICIES,
    *COSMETIC_VARIANTS,
)
REFERENCE: Mapping[str, str] = {name: "honest" for name in (*DEGENERATE_POLICIES, *COSMETIC_VARIANTS)} | {
    "blob_update": "honest_lead",
    "seed_swap": "seed_aware",
}
"""The honest policy each degenerate policy or variant is measured against: the one holding the same information."""


def make_audit_policy(name: str, env: Any = None, *, reader: Reader = "heuristic") -> Policy:
    """An audit policy by name (see :data:`AUDIT_POLICIES`); ``oracle`` and ``no_memory`` are the library's own
    (the oracle is privileged and always answers with the gold answer: it is the ceiling)."""
    if name in _AUDIT:
        return _AUDIT[name](reader=reader)
    if name == "oracle":
        if env is None:
            raise ConfigError("the 'oracle' audit policy reads the env's task; pass env=env.unwrapped")
        return OraclePolicy(env)
    if name == "random":
        return RandomPolicy(seed=0)
    raise ConfigError(f"unknown audit policy {name!r}; choose from {', '.join(AUDIT_POLICIES)}")


_TERMS = ("compression", "preventive", "preservation", "storage", "maintenance", "relevance")


def reward_audit(
    env: gym.Env[str, str],
    policies: Sequence[str] = AUDIT_POLICIES,
    *,
    episodes: int = 20,
    seed: int = 0,
    task_ids: Sequence[str] | None = None,
    reader: Reader = "heuristic",
    check_sum: bool = True,
    memories: Callable[[Task], Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """Run each policy on the same tasks and return one row per policy: the means of R, the task score, every
    context and memory term, memory quality, and the largest |Σ step rewards − R(τ)| seen (``sum_gap``).

    Args:
        env: One AgeMem env (wrapped or not).
        policies: Names from :data:`AUDIT_POLICIES`.
        episodes: Tasks drawn with seeds ``seed .. seed + episodes - 1`` (ignored when ``task_ids`` is given).
        task_ids: Exactly these tasks, in order.
        reader: ``"heuristic"`` answers from what was retrieved; ``"none"`` answers "unknown" (task term fixed).
        check_sum: Record the shaping identity's gap (the step rewards must sum to R(τ)).
        memories: Start each episode with ``memories(task)`` in long-term memory (e.g. :func:`gold_notes`).
    """
    base = env.unwrapped
    if task_ids is None:
        ids = []
        for i in range(episodes):
            _, info = env.reset(seed=seed + i)
            ids.append(info["task_id"])
    else:
        ids = list(task_ids)
    table = []
    for name in policies:
        policy = make_audit_policy(name, base, reader=reader)
        rows: list[dict[str, float]] = []
        gap = 0.0
        for i, tid in enumerate(ids):
            options: dict[str, Any] = {"task_id": tid}
            if memories is not None:
                options["memories"] = list(memories(getattr(base, "suite").get(tid)))  # noqa: B009  (any AgeMem env)
            obs, info = env.reset(seed=seed + i, options=options)
            policy.reset(info)
            total = 0.0
            while True:
                obs, reward, terminated, truncated, info = env.step(policy.act(obs, info))
                total += float(reward)
                if terminated or truncated:
                    break
            ep = info["episode"]
            gap = max(gap, abs(total - ep["R"])) if check_sum else gap
            row = {"R": ep["R"], "task": ep["task_score"], **{t: ep["terms"][t] for t in _TERMS}}
            row |= {f"MQ_{k}": v for k, v in ep["memory_quality"].items()}
            row["truncated"] = float(ep["truncation_reason"] is not None)
            rows.append(row)
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        table.append({"policy": name, "episodes": len(rows), **mean, "sum_gap": gap})
    return table


def audit_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The audit as a Markdown table (R first, then every term, then memory quality)."""
    cols = ["R", "task", *_TERMS, "MQ_precision", "MQ_recall", "MQ_f1"]
    head = "| policy | " + " | ".join(cols) + " |"
    rule = "|---|" + "---:|" * len(cols)
    body = [f"| {r['policy']} | " + " | ".join(f"{float(r[c]):.3f}" for c in cols) + " |" for r in rows]
    return "\n".join([head, rule, *body])
