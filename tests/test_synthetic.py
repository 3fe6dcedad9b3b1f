"""Tests for agemem_gym.envs.synthetic: shape, determinism, and answerability checked by an independent reader.

The reader below parses paragraphs and questions with its own regular expressions (a specification of the
wording, not the generator's code) and re-derives every answer and supporting fact from the text alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from agemem_gym.envs.synthetic import DIFFICULTIES, SyntheticConfig, make_synthetic_suite
from agemem_gym.errors import ConfigError
from agemem_gym.task import Paragraph, Task

# --------------------------------------------------------------------------------------------------------------
# An independent reader: paragraphs -> (subject, relation) -> value, with the sentence that states it
# --------------------------------------------------------------------------------------------------------------

NAME = r"[A-Z][a-z]+(?: [A-Z][a-z]+)*"
Where = tuple[str, int]


# (pattern, relations of its value groups); a group named "t" must equal the paragraph's title, "s" its last word.
_PATTERNS = [
    (re.compile(p), rels)
    for p, rels in [
        (rf"(?P<t>{NAME}) is a town in the province of (\w+)\.", ("region",)),
        (r"The town lies on the River (\w+)\.", ("river",)),
        (r"The town was founded in (\d{3,4})\.", ("year",)),
        (r"Its population was ([\d,]+) at the last census\.", ("population",)),
        (rf"(?P<t>{NAME}) \(born (\d{{3,4}})\) is an? [a-z ]+\.", ("year",)),
        (rf"(?P<t>{NAME}) \((\d{{3,4}})–\d{{3,4}}\) was an? [a-z ]+\.", ("year",)),
        (rf"(?P<s>[A-Z][a-z]+) was born in ({NAME})\.", ("birthplace",)),
        (rf"(?P<s>[A-Z][a-z]+) (?:later founded|formed the band) ({NAME})\.", ("org",)),
        (rf"(?P<t>{NAME}) is an? [a-z-]+ company headquartered in ({NAME})\.", ("town",)),
        (rf"The company was established in (\d{{3,4}}) by ({NAME})\.", ("year", "founder")),
        (r"It employs about ([\d,]+) people\.", ("employees",)),
        (rf"(?P<t>{NAME}) is an? ([a-z-]+) band from ({NAME})\.", ("genre", "town")),
        (rf"The band was formed in (\d{{3,4}}) by ({NAME})\.", ("year", "founder")),
        (r"The band has (\d+) members\.", ("members",)),
        (rf"The (?P<t>{NAME}) is an? [a-z -]+ bridge in ({NAME})\.", ("town",)),
        (rf"It was completed in (\d{{3,4}}) to a design by ({NAME})\.", ("year", "designer")),
        (r"The bridge is ([\d,]+) metres long\.", ("length",)),
    ]
]


def _values(match: re.Match[str]) -> tuple[str, ...]:
    """The value groups of a match (the unnamed ones), in order."""
    named = {match.start(g) for g in match.groupdict()}
    return tuple(v for i, v in enumerate(match.groups(), 1) if match.start(i) not in named)


@dataclass
class KB:
    """Facts read from some paragraphs; ``used`` collects the sentences a lookup relied on."""

    facts: dict[tuple[str, str], tuple[str, Where]] = field(default_factory=dict)
    used: set[Where] = field(default_factory=set)

    def add(self, subject: str, relation: str, value: str, where: Where) -> None:
        old = self.facts.get((subject, relation))
        assert old is None or old[0] == value, f"conflict on {subject}.{relation}: {old[0]!r} vs {value!r}"
        self.facts[subject, relation] = (value, where)

    def get(self, subject: str, relation: str) -> str:
        value, where = self.facts[subject, relation]
        self.used.add(where)
        return value

    def num(self, subject: str, relation: str) -> int:
        return int(self.get(subject, relation).replace(",", ""))

    def subjects(self, relation: str, value: str) -> list[str]:
        return [s for (s, r), (v, _) in self.facts.items() if r == relation and v == value]


def read(paragraphs: tuple[Paragraph, ...]) -> KB:
    """Read every fact sentence of ``paragraphs``; fails on a conflict, including two founders of one thing."""
    kb = KB()
    for p in paragraphs:
        for idx, sentence in enumerate(p.sentences):
            for pattern, rels in _PATTERNS:
                m = pattern.fullmatch(sentence.strip())
                if m is None:
                    continue
                subject = m.groupdict()
                assert (
                    subject.get("t", p.title) == p.title
                    and subject.get("s", p.title.split()[-1]) == p.title.split()[-1]
                )
                for rel, value in zip(rels, _values(m)):
                    kb.add(p.title, rel, value, (p.title, idx))
    # Founding is stated from both ends (the person's "later founded X", the company's "established ... by P"):
    # across paragraphs it must stay one-to-one, or "the company founded by P" would be ambiguous.
    founded = {(s, v) for (s, r), (v, _) in kb.facts.items() if r == "org"}
    founded |= {(v, s) for (s, r), (v, _) in kb.facts.items() if r == "founder"}
    for a, b in founded:
        assert all(y == b for x, y in founded if x == a), f"{a} founded two things in one context"
        assert all(x == a for x, y in founded if y == b), f"{b} has two founders in one context"
    return kb


def _earlier(kb: KB, x: str, y: str, rel: str, smaller: bool) -> str:
    vx, vy = kb.num(x, rel), kb.num(y, rel)
    assert vx != vy, f"{x} and {y} tie on {rel}"
    return x if (vx < vy) == smaller else y


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _described(kb: KB, town: str) -> str:
    """The company founded by the person born in ``town``: exactly one such founder may be in the context."""
    born_there = [p for p in kb.subjects("birthplace", town) if (p, "org") in kb.facts]
    assert len(born_there) == 1, f"{len(born_there)} founders born in {town}"
    kb.get(born_there[0], "birthplace")
    return kb.get(kb.get(born_there[0], "org"), "year")


Solver = Callable[[KB, re.Match[str]], str]
QUESTIONS: list[tuple[str, Solver]] = [
    (
        r"In which year was the company founded by the person born in (.+) established\?",
        lambda k, m: _described(k, m[1]),
    ),
    (r"In which year was the company founded by (.+) established\?", lambda k, m: k.get(k.get(m[1], "org"), "year")),
    (r"In which town is the company founded by (.+) headquartered\?", lambda k, m: k.get(k.get(m[1], "org"), "town")),
    (r"How many people does the company founded by (.+) employ\?", lambda k, m: k.get(k.get(m[1], "org"), "employees")),
    (r"What genre of music does the band formed by (.+) play\?", lambda k, m: k.get(k.get(m[1], "org"), "genre")),
    (r"How many members does the band formed by (.+) have\?", lambda k, m: k.get(k.get(m[1], "org"), "members")),
    (r"In which year was the band started by (.+) formed\?", lambda k, m: k.get(k.get(m[1], "org"), "year")),
    (r"In which town was the founder of (.+) born\?", lambda k, m: k.get(k.get(m[1], "founder"), "birthplace")),
    (r"In what year was the founder of (.+) born\?", lambda k, m: k.get(k.get(m[1], "founder"), "year")),
    (r"Where was the founder of the band (.+) born\?", lambda k, m: k.get(k.get(m[1], "founder"), "birthplace")),
    (r"In which year was the designer of the (.+) born\?", lambda k, m: k.get(k.get(m[1], "designer"), "year")),
    (r"Which river flows through the town where the (.+) stands\?", lambda k, m: k.get(k.get(m[1], "town"), "river")),
    (r"In what year was the town where the (.+) stands founded\?", lambda k, m: k.get(k.get(m[1], "town"), "year")),
    (r"In which province is the town where (.+) is headquartered\?", lambda k, m: k.get(k.get(m[1], "town"), "region")),
    (
        r"What was the population of the hometown of (.+) at the last census\?",
        lambda k, m: k.get(k.get(m[1], "town"), "population"),
    ),
    (r"Which river flows through the birthplace of (.+)\?", lambda k, m: k.get(k.get(m[1], "birthplace"), "river")),
    (r"Which was founded earlier, (.+) or (.+)\?", lambda k, m: _earlier(k, m[1], m[2], "year", True)),
    (r"Which band was formed first, (.+) or (.+)\?", lambda k, m: _earlier(k, m[1], m[2], "year", True)),
    (r"Which was completed first, the (.+) or the (.+)\?", lambda k, m: _earlier(k, m[1], m[2], "year", True)),
    (r"Who was born earlier, (.+) or (.+)\?", lambda k, m: _earlier(k, m[1], m[2], "year", True)),
    (r"Which town was founded earlier, (.+) or (.+)\?", lambda k, m: _earlier(k, m[1], m[2], "year", True)),
    (
        r"Which town had the larger population at the last census, (.+) or (.+)\?",
        lambda k, m: _earlier(k, m[1], m[2], "population", False),
    ),
    (r"Which band has more members, (.+) or (.+)\?", lambda k, m: _earlier(k, m[1], m[2], "members", False)),
    (r"Which company employs more people, (.+) or (.+)\?", lambda k, m: _earlier(k, m[1], m[2], "employees", False)),
    (r"Which is longer, the (.+) or the (.+)\?", lambda k, m: _earlier(k, m[1], m[2], "length", False)),
    (
        r"Are (.+) and (.+) both headquartered in (.+)\?",
        lambda k, m: _yes((k.get(m[1], "town"), k.get(m[2], "town")) == (m[3], m[3])),
    ),
    (
        r"Are the (.+) and the (.+) both located in (.+)\?",
        lambda k, m: _yes((k.get(m[1], "town"), k.get(m[2], "town")) == (m[3], m[3])),
    ),
    (
        r"Were (.+) and (.+) born in the same town\?",
        lambda k, m: _yes(k.get(m[1], "birthplace") == k.get(m[2], "birthplace")),
    ),
    (
        r"Do (.+) and (.+) play the same genre of music\?",
        lambda k, m: _yes(k.get(m[1], "genre") == k.get(m[2], "genre")),
    ),
    (r"Do (.+) and (.+) lie on the same river\?", lambda k, m: _yes(k.get(m[1], "river") == k.get(m[2], "river"))),
]
COMPILED = [(re.compile(p), f) for p, f in QUESTIONS]


def solve(task: Task, paragraphs: tuple[Paragraph, ...]) -> tuple[str, set[Where]]:
    """Answer ``task.question`` from ``paragraphs`` alone; return the answer and the sentences it used."""
    kb = read(paragraphs)
    for pattern, solver in COMPILED:
        m = pattern.fullmatch(task.question)
        if m:
            return solver(kb, m), kb.used
    raise AssertionError(f"the reader does not know this question: {task.question!r}")


def suite_digest(n: int, seed: int, difficulty: str) -> str:
    suite = make_synthetic_suite(n, seed=seed, difficulty=difficulty)  # type: ignore[arg-type]
    blob = json.dumps([t.to_dict() for t in suite], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# --------------------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_every_answer_follows_from_gold_and_is_not_contradicted(seed: int, difficulty: str) -> None:
    """Each answer is derived from the gold paragraphs, the same from all ten, and via exactly the supporting facts."""
    for task in make_synthetic_suite(300, seed=seed, difficulty=difficulty):  # type: ignore[arg-type]
        gold_answer, used = solve(task, task.gold_paragraphs)
        assert gold_answer == task.answer, task.task_id
        assert used == {(f.title, f.sent_idx) for f in task.supporting_facts}, task.task_id
        all_answer, _ = solve(task, task.paragraphs)  # read() also fails on any conflicting distractor fact
        assert all_answer == task.answer, task.task_id
        if task.answer not in ("yes", "no"):
            assert any(task.answer in p.text for p in task.gold_paragraphs), task.task_id


def test_shape_matches_hotpotqa_distractor_setting() -> None:
    """Ten paragraphs (2 gold + 8 distractors), unique titles, 3-5 sentences in HotpotQA's spacing, exact facts."""
    suite = make_synthetic_suite(500, seed=3)
    assert len(suite) == 500 and suite.name == "synthetic"
    for i, task in enumerate(suite):
        assert task.task_id == f"syn-medium-s3-{i:06d}"
        assert task.level == "medium" and task.source == "synthetic"
        assert task.qtype in ("bridge", "comparison")
        assert len(task.paragraphs) == 10 and len(task.gold_paragraphs) == 2
        assert len({p.title for p in task.paragraphs}) == 10
        for p in task.paragraphs:
            assert 3 <= len(p.sentences) <= 5
            assert not p.sentences[0].startswith(" ")
            assert all(s.startswith(" ") for s in p.sentences[1:])
        by_title = {p.title: p for p in task.paragraphs}
        for f in task.supporting_facts:
            assert by_title[f.title].sentences[f.sent_idx].strip() == f.text


def test_question_mix_is_hotpotqa_like() -> None:
    """About a fifth are comparisons, yes/no answers are balanced, and most questions are distinct."""
    suite = make_synthetic_suite(1000, seed=0)
    comparisons = [t for t in suite if t.qtype == "comparison"]
    yes = sum(t.answer == "yes" for t in comparisons)
    no = sum(t.answer == "no" for t in comparisons)
    assert 150 <= len(comparisons) <= 250
    assert yes > 20 and no > 20 and abs(yes - no) < 0.5 * (yes + no)
    assert len({t.question for t in suite}) > 850


def test_same_seed_gives_identical_suite_in_another_process() -> None:
    """A subprocess with a different hash seed produces a byte-identical suite."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from test_synthetic import suite_digest; print(suite_digest(200, 5, 'hard'))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", code, here], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == suite_digest(200, 5, "hard")


def test_seed_and_difficulty_change_the_suite() -> None:
    """Different seeds or difficulties give different suites."""
    digests = {suite_digest(50, s, d) for s in (0, 1) for d in DIFFICULTIES}
    assert len(digests) == 6


def test_task_does_not_depend_on_suite_size() -> None:
    """Task i (and its id) is the same in a suite of 10 and in a suite of 60."""
    small, large = make_synthetic_suite(10, seed=2), make_synthetic_suite(60, seed=2)
    assert list(small) == list(large)[:10]


def _shared_prefix_share(task: Task) -> float:
    """Share of distractor titles that start like a gold title (first four letters)."""
    gold = {t[:4] for t in task.gold_titles}
    distractors = task.distractor_paragraphs
    return sum(p.title[:4] in gold for p in distractors) / len(distractors)


def test_harder_means_more_confusable_distractors() -> None:
    """Hard distractors share gold name stems more often than medium ones, and medium more than easy ones."""
    share = {
        d: sum(map(_shared_prefix_share, make_synthetic_suite(300, seed=4, difficulty=d))) / 300  # type: ignore[arg-type]
        for d in DIFFICULTIES
    }
    assert share["easy"] < share["medium"] < share["hard"], share


def test_hard_comparisons_are_closer_than_easy_ones() -> None:
    """'Which was founded earlier' pairs are a few years apart on hard and decades apart on easy."""

    def gaps(difficulty: str) -> list[int]:
        out = []
        for t in make_synthetic_suite(1000, seed=0, difficulty=difficulty):  # type: ignore[arg-type]
            m = re.fullmatch(r"Which was founded earlier, (.+) or (.+)\?", t.question)
            if m:
                kb = read(t.gold_paragraphs)
                out.append(abs(kb.num(m[1], "year") - kb.num(m[2], "year")))
        return sorted(out)

    hard, easy = gaps("hard"), gaps("easy")
    assert hard and easy
    assert hard[len(hard) // 2] <= 5 and min(easy) >= 30


def test_config_changes_shape() -> None:
    """n_distractors, comparison_ratio and sentence bounds are honoured."""
    config = SyntheticConfig(n_distractors=3, comparison_ratio=1.0, min_sentences=4, max_sentences=4)
    suite = make_synthetic_suite(40, seed=0, config=config)
    assert all(t.qtype == "comparison" and len(t.paragraphs) == 5 for t in suite)
    assert all(len(p.sentences) == 4 for t in suite for p in t.paragraphs)
    bare = make_synthetic_suite(20, seed=0, config=SyntheticConfig(n_distractors=0, comparison_ratio=0.0))
    assert all(t.qtype == "bridge" and len(t.paragraphs) == 2 for t in bare)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_tasks": 0}, "'n_tasks' must be an int in"),
        ({"seed": -1}, "'seed' must be an int in"),
        ({"difficulty": "extreme"}, "'difficulty' must be one of"),
        ({"n_tasks": 2.5}, "'n_tasks' must be an int in"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, object], message: str) -> None:
    """Out-of-range arguments raise ConfigError naming the argument."""
    with pytest.raises(ConfigError, match=message):
        make_synthetic_suite(**kwargs)  # type: ignore[arg-type]


def test_bad_config_raises_config_error() -> None:
    """SyntheticConfig validates its fields when built."""
    with pytest.raises(ConfigError, match="n_distractors"):
        SyntheticConfig(n_distractors=-1)
    with pytest.raises(ConfigError, match="comparison_ratio"):
        SyntheticConfig(comparison_ratio=1.5)
    with pytest.raises(ConfigError, match="min_sentences"):
        SyntheticConfig(min_sentences=2)


def test_reader_catches_planted_conflicts() -> None:
    """The checker is not vacuous: a distractor giving a gold founder a second company, or a wrong answer, fails."""
    task = next(
        t for t in make_synthetic_suite(200, seed=0) if re.search(r"company founded by [A-Z].* established", t.question)
    )
    person = re.fullmatch(r"In which year was the company founded by (.+) established\?", task.question)
    assert person is not None
    planted = Paragraph(
        "Zzfake Works",
        ("Zzfake Works is a paper company in Nowhere.", f" The company was established in 1800 by {person[1]}."),
    )
    with pytest.raises(AssertionError, match="founded two things"):
        read((*task.paragraphs, planted))
    wrong_year = tuple(
        Paragraph(p.title, tuple(re.sub(r"established in \d+", "established in 1111", s) for s in p.sentences))
        for p in task.gold_paragraphs
    )
    assert solve(task, wrong_year)[0] == "1111" != task.answer
