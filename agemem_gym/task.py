"""Tasks and task suites: the data an episode is built from.

A :class:`Task` is one multi-hop question in HotpotQA's shape: the question, its answer, the paragraphs of
its context (gold and distractor) and the supporting facts that ground the answer. A :class:`TaskSuite` is an
ordered, id-indexed collection of tasks. The suites in :mod:`agemem_gym.envs` (HotpotQA, synthetic) build
suites; the environment only reads them.

>>> p = Paragraph("Orvel Bridge", ("The Orvel Bridge was built in 1841.", " It spans the Tamsin."))
>>> t = Task("t0", "When was the bridge over the Tamsin built?", "1841",
...          supporting_facts=(SupportingFact("Orvel Bridge", 0, "The Orvel Bridge was built in 1841."),),
...          paragraphs=(p,))
>>> [q.title for q in t.gold_paragraphs]
['Orvel Bridge']
>>> TaskSuite("demo", [t]).get("t0").answer
'1841'
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from agemem_gym._validate import is_int
from agemem_gym.errors import ConfigError, DataError
from agemem_gym.text import has_lone_surrogates

__all__ = ["Paragraph", "SupportingFact", "Task", "TaskSuite"]


@dataclass(frozen=True)
class Paragraph:
    """A titled paragraph, kept as its sentences (HotpotQA's ``[title, [sentence, ...]]``)."""

    title: str
    sentences: tuple[str, ...]

    @property
    def text(self) -> str:
        """The paragraph as one string (HotpotQA sentences carry their own leading spaces)."""
        return "".join(self.sentences).strip()


@dataclass(frozen=True)
class SupportingFact:
    """One gold supporting sentence: HotpotQA's ``[title, sent_idx]`` with the sentence text resolved."""

    title: str
    sent_idx: int
    text: str


@dataclass(frozen=True)
class Task:
    """One question with its context paragraphs and gold supporting facts.

    Attributes:
        task_id: Stable id (HotpotQA's ``_id``, or the synthetic suite's own).
        question: The question asked in stage 3.
        answer: The gold answer string.
        supporting_facts: The gold supporting sentences; they ground the memory rewards.
        paragraphs: Every context paragraph, gold and distractor, in source order.
        qtype: ``"bridge"`` or ``"comparison"`` (HotpotQA's ``type``; the synthetic suite adds ``"recall"``).
        level: HotpotQA's ``level`` (``"easy"``, ``"medium"``, ``"hard"``) or the synthetic difficulty.
        source: Name of the suite the task comes from.
    """

    task_id: str
    question: str
    answer: str
    supporting_facts: tuple[SupportingFact, ...]
    paragraphs: tuple[Paragraph, ...]
    qtype: str = "bridge"
    level: str = ""
    source: str = ""
    _gold_titles: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        field_name = _surrogate_field(self)
        if field_name is not None:
            raise ConfigError(
                f"task {self.task_id!r}: {field_name} holds lone UTF-16 surrogates (U+D800..U+DFFF), which no "
                "tokenizer or UTF-8 file can take; fix the text (e.g. decode the source with errors='replace')"
            )
        object.__setattr__(self, "_gold_titles", frozenset(f.title for f in self.supporting_facts))

    @property
    def gold_titles(self) -> frozenset[str]:
        """Titles of the paragraphs that hold at least one supporting fact."""
        return self._gold_titles

    @property
    def gold_paragraphs(self) -> tuple[Paragraph, ...]:
        """The paragraphs that hold supporting facts, in source order."""
        return tuple(p for p in self.paragraphs if p.title in self._gold_titles)

    @property
    def distractor_paragraphs(self) -> tuple[Paragraph, ...]:
        """The paragraphs that hold no supporting fact, in source order."""
        return tuple(p for p in self.paragraphs if p.title not in self._gold_titles)

    @property
    def supporting_sentences(self) -> tuple[str, ...]:
        """The supporting facts' sentence texts, stripped."""
        return tuple(f.text.strip() for f in self.supporting_facts)

    def mentions_answer(self, paragraph: Paragraph) -> bool:
        """True when ``paragraph`` states this task's answer: its normalised words (HotpotQA's answer
        normalisation) appear in order in the paragraph's. Yes/no answers are never "mentioned"."""
        from agemem_gym.rewards import normalize_answer

        answer = normalize_answer(self.answer)
        if not answer or answer in ("yes", "no", "noanswer"):
            return False
        return f" {answer} " in f" {normalize_answer(paragraph.text)} "

    def to_dict(self) -> dict[str, Any]:
        """The task in HotpotQA's own record layout (JSON-serialisable)."""
        return {
            "_id": self.task_id,
            "question": self.question,
            "answer": self.answer,
            "supporting_facts": [[f.title, f.sent_idx] for f in self.supporting_facts],
            "context": [[p.title, list(p.sentences)] for p in self.paragraphs],
            "type": self.qtype,
            "level": self.level,
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], *, source: str = "hotpotqa") -> Task:
        """Build a task from a record in HotpotQA's layout.

        Supporting facts whose sentence index is out of range (a handful exist in the official files) are
        dropped; a record left with no supporting fact at all is rejected.

        Raises:
            DataError: The record lacks a field or has one of the wrong type; the message names the record.
        """
        rid = record.get("_id", "<no _id>") if isinstance(record, Mapping) else "<not a mapping>"
        if not isinstance(record, Mapping):
            raise DataError(f"a HotpotQA record must be a JSON object, got {type(record).__name__}")
        for key, typ in (
            ("_id", str),
            ("question", str),
            ("answer", str),
            ("supporting_facts", list),
            ("context", list),
        ):
            if not isinstance(record.get(key), typ):
                raise DataError(
                    f"record {rid!r}: field {key!r} must be a {typ.__name__}, got {type(record.get(key)).__name__}"
                )
        if not record["answer"].strip():
            raise DataError(f"record {rid!r}: field 'answer' is empty; every question needs a gold answer")
        paragraphs: list[Paragraph] = []
        for i, item in enumerate(record["context"]):
            if (
                not isinstance(item, (list, tuple))
                or len(item) != 2
                or not isinstance(item[0], str)
                or not isinstance(item[1], (list, tuple))
                or not all(isinstance(s, str) for s in item[1])
            ):
                raise DataError(f"record {rid!r}: context[{i}] must be [title, [sentence, ...]], got {item!r:.80}")
            paragraphs.append(Paragraph(item[0], tuple(item[1])))
        by_title = {p.title: p for p in paragraphs}
        facts: list[SupportingFact] = []
        for i, item in enumerate(record["supporting_facts"]):
            if (
                not isinstance(item, (list, tuple))
                or len(item) != 2
                or not isinstance(item[0], str)
                or not is_int(item[1])
            ):
                raise DataError(f"record {rid!r}: supporting_facts[{i}] must be [title, int], got {item!r:.80}")
            para = by_title.get(item[0])
            if para is not None and 0 <= item[1] < len(para.sentences):
                facts.append(SupportingFact(item[0], item[1], para.sentences[item[1]].strip()))
        if not facts:
            raise DataError(f"record {rid!r}: no supporting fact resolves to a context sentence")
        try:
            return cls(
                task_id=record["_id"],
                question=record["question"],
                answer=record["answer"],
                supporting_facts=tuple(facts),
                paragraphs=tuple(paragraphs),
                qtype=str(record.get("type", "")),
                level=str(record.get("level", "")),
                source=source,
            )
        except ConfigError as err:  # lone surrogates: the file's fault here, not the caller's
            raise DataError(f"record {rid!r}: {err}") from None


def _surrogate_field(task: Task) -> str | None:
    """The first text field of ``task`` that holds lone surrogates, or None."""
    for name in ("task_id", "question", "answer", "qtype", "level", "source"):
        value = getattr(task, name)
        if isinstance(value, str) and has_lone_surrogates(value):
            return name
    for p in task.paragraphs:
        if has_lone_surrogates(p.title) or any(has_lone_surrogates(s) for s in p.sentences):
            return f"paragraph {p.title!r}"
    for f in task.supporting_facts:
        if has_lone_surrogates(f.title) or has_lone_surrogates(f.text):
            return f"supporting fact {f.title!r}"
    return None


def _split_point(task_id: str) -> float:
    """A task id's place in [0, 1), uniform over ids and stable everywhere (the split of :meth:`TaskSuite.split`)."""
    digest = hashlib.blake2b(task_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class TaskSuite(Sequence[Task]):
    """An ordered collection of tasks, indexed by position and by id.

    Args:
        name: Short name of the suite (``"hotpotqa"``, ``"synthetic"``).
        tasks: The tasks; ids must be unique.

    Raises:
        ConfigError: The suite is empty or two tasks share an id.
    """

    def __init__(self, name: str, tasks: Sequence[Task]) -> None:
        if not tasks:
            raise ConfigError(f"task suite {name!r} must hold at least one task, got 0")
        self.name = name
        self._tasks: tuple[Task, ...] = tuple(tasks)
        self._index: dict[str, int] = {}
        for i, t in enumerate(self._tasks):
            if t.task_id in self._index:
                raise ConfigError(f"task suite {name!r}: task id {t.task_id!r} appears twice; ids must be unique")
            self._index[t.task_id] = i

    def __len__(self) -> int:
        return len(self._tasks)

    def __getitem__(self, index: int) -> Task:  # type: ignore[override]
        return self._tasks[index]

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._index

    def __repr__(self) -> str:
        return f"TaskSuite(name={self.name!r}, tasks={len(self)})"

    @property
    def task_ids(self) -> tuple[str, ...]:
        """Every task id, in suite order."""
        return tuple(t.task_id for t in self._tasks)

    def get(self, task_id: str) -> Task:
        """The task with this id.

        Raises:
            ConfigError: No task has this id (the message suggests close ids).
        """
        i = self._index.get(task_id)
        if i is None:
            close = difflib.get_close_matches(str(task_id), list(self._index), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else f"; it has {len(self)} tasks"
            raise ConfigError(f"task_id {task_id!r} is not in suite {self.name!r}{hint}")
        return self._tasks[i]

    def split(self, part: Literal["all", "train", "heldout"], heldout_fraction: float = 0.2) -> TaskSuite:
        """The tasks of one part of a fixed train / held-out split (``"all"``: the suite itself).

        A task is held out when a hash of its id (BLAKE2b, so the same in every process and on every platform) falls
        below ``heldout_fraction``: its part never depends on the suite's size or order, so a model trained on
        ``"train"`` has never seen a ``"heldout"`` task, whichever subset of the data either side loaded.

        Raises:
            ConfigError: ``part`` is not one of the three, the fraction is outside (0, 1), or the part is empty.
        """
        if part not in ("all", "train", "heldout"):
            raise ConfigError(f"'split' must be 'all', 'train' or 'heldout', got {part!r}")
        if isinstance(heldout_fraction, bool) or not 0.0 < float(heldout_fraction) < 1.0:
            raise ConfigError(f"'heldout_fraction' must be a number in (0, 1), got {heldout_fraction!r}")
        if part == "all":
            return self
        want = part == "heldout"
        kept = [t for t in self._tasks if (_split_point(t.task_id) < heldout_fraction) == want]
        if not kept:
            raise ConfigError(
                f"the {part!r} part of suite {self.name!r} ({len(self)} tasks, heldout_fraction "
                f"{heldout_fraction}) is empty; use more tasks or another fraction"
            )
        return TaskSuite(self.name, kept)

    def sample(self, rng: np.random.Generator) -> Task:
        """One task drawn uniformly with ``rng``."""
        return self._tasks[int(rng.integers(len(self._tasks)))]

    def filler_paragraphs(
        self,
        rng: np.random.Generator,
        n: int,
        *,
        exclude: Task,
        reject: Callable[[Paragraph], bool] | None = None,
    ) -> list[Paragraph]:
        """``n`` distractor paragraphs drawn from other tasks, none titled like a paragraph of ``exclude`` and
        none for which ``reject`` is true (the env rejects those that mention the answer).

        Used to top up stage 2 when a task has fewer distractors than asked for. Deterministic given ``rng``.
        Returns fewer than ``n`` only when the suite holds too few other paragraphs.
        """
        if n <= 0 or len(self._tasks) < 2:
            return []
        taken = {p.title for p in exclude.paragraphs}
        out: list[Paragraph] = []
        order = rng.permutation(len(self._tasks))
        for i in order:
            task = self._tasks[int(i)]
            if task.task_id == exclude.task_id:
                continue
            for p in task.distractor_paragraphs:
                if p.title not in taken and not (reject is not None and reject(p)):
                    taken.add(p.title)
                    out.append(p)
                    break
            if len(out) == n:
                break
        return out
