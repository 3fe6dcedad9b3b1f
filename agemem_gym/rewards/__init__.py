"""Rewards: AgeMem's trajectory reward (paper §3.5 and App. A.2), its per-step shaping, and every rule behind them.

This module owns the reward. The env reports what happened (:meth:`RewardRules.show` when the user shares
material, :meth:`RewardRules.turn` with each agent turn's tool results, :meth:`RewardRules.context` with the
context's size, :meth:`RewardRules.final_answer`, :meth:`RewardRules.truncate`); the rules decide what each event
counts for and keep it in an :class:`EpisodeLedger`. The episode reward is the paper's Eq. 16:

    R(τ) = w_task·R_task + w_context·R_context + w_memory·R_memory (+ w_efficiency·R_efficiency) + P

**Shaping.** Every term is a function of the ledger. Terms measured "when the final answer is generated"
(compression, preservation, task) are 0 until then and the others are 0 before the agent acts, so the potential
Φ(s) = w_context·R_context(s) + w_memory·R_memory(s) (+ w_efficiency·R_efficiency(s)) is 0 at the start. The env
pays Φ(s_{t+1}) − Φ(s_t) at each step, plus the task term and penalties when they occur, so the step rewards sum
exactly to R(τ). Because the shaping is a potential difference, it does not change which policy is optimal for
the undiscounted return (Ng, Harada & Russell, ICML 1999); with a discount γ < 1 the shaping would have to be
γΦ(s_{t+1}) − Φ(s_t) for that to hold, which is not what the env pays.

**The terms, and why each resists being gamed.** Gold facts are HotpotQA's supporting sentences; "holds" is
:mod:`agemem_gym.rewards.grounding`'s sentence-level, two-way rule (a sentence must cover a fact and be mostly gold itself),
and precision is weighted by distinct content words, so padding, blobs, keyword soups and repeats dilute it.

- storage (Eq. 23): F1 of the agent's **stage-1** adds, as written: precision = gold words / stored words,
  recall = facts held / facts shown so far. Adds in stages 2 and 3 do not count (nothing gold is shown then).
  When the episode starts with memories (``reset(options={"memories": ...})``), storage is what the adds
  improved: ``Q(seeded + stage-1 adds) − Q(seeded)`` (the same F1; with no seeds Q(seeded) = 0 and it is the F1
  of the adds). Scoring the adds alone paid twice for a fact the store already held: re-adding every seeded
  note earned storage for it, and deleting the seeds then earned maintenance for removing the duplicates
  (measured, 30 tasks seeded with :func:`~agemem_gym.evaluation.audit.gold_notes`, reader "none": ``seed_swap`` R 0.327 and
  ``honest``, which re-adds them and keeps both, 0.311, against 0.308 for ``seed_aware``, which adds only what
  the store lacks, on synthetic; 0.306 and 0.288 against 0.278 on HotpotQA). Marginal storage makes a duplicate
  worth what it adds to the store, nothing or less (now 0.280 and 0.264 against 0.284; 0.237 and 0.218 against
  0.241), and storage + maintenance is the store's improvement whatever the agent was given.
- maintenance (Eq. 24): how much the agent's updates and deletes before the question improved the store it built,
  ``Q(maintained) − Q(built)`` with Q the F1 (as for storage) of the seeded and stage-1 memories as they read
  now and as they were written; negative when the edits made the store worse. Storage + maintenance is exactly
  ``Q(the store the agent ends with) − Q(the store it was given)`` (the F1 of its final store, without seeded
  memories), so no sequence of adds and edits can earn more than the store it leaves: a cosmetic update changes nothing (or costs its padding), adding junk and deleting it again
  nets zero, growing one memory by updates is worth what adding the same text would be; later adds never count,
  and neither do edits after the question (pruning by hindsight whatever it did not retrieve).
- relevance (Eq. 25): over the distinct memories retrieved **in stage 3** (once the question exists): the F1 of
  the precision of their sentences and the share of the question's gold facts among them. Retrieving the same
  memory again changes nothing; retrieving everything costs precision, retrieving too little costs the share.
  (The product precision × share favours top_k=1: with the hashing retriever a single, usually gold, hit beats
  three. With the F1 the audit's honest top_k=3 earns more than top_k=1: R 0.321 vs 0.305 on synthetic, 0.300 vs
  0.287 on HotpotQA, 200 tasks each.)
- compression (Eq. 19): ``max(0, 1 − T_used/T_max)`` at the final answer.
- preventive (Eq. 20): 1 once a Summary_context or Filter_context has made the context **shorter** before it
  first overflowed; a "summary" that lengthens the context earns nothing.
- preservation (Eq. 21): how well the context the agent answers from preserves the query-relevant content: the
  F1 of the share of the question's gold facts it holds and the share of its material that is gold (material:
  what the user shared, the memories tools brought in and summaries; not the agent's own action text, and not the
  question, which every policy has). The share alone (``GroundingConfig(preservation="recall")``) is maxed by
  retrieving everything into the context, which an 8,192-token budget barely charges through compression; the
  precision side makes a context cluttered with distractors or a memory dump score lower, so stage 2's clean-up
  and a focused retrieval pay. ``preservation="key_terms"`` is the paper's literal Eq. 21 (key terms present,
  which the question alone satisfies). Both ablations are gameable, and constructing either warns
  (:class:`~agemem_gym.errors.GameableRewardWarning`, naming the exploit the audit measured).
- efficiency (``released_weights`` only): the share of the agent's turns that were well formed with every call
  succeeding (1 for a policy that only answers: calling tools earns nothing by itself).
- task (Eq. 17): precision-gated recall by default (:func:`gated_recall`; or EM, F1, fuzzy or a judge). The
  paper's judge is binary; partial credit is kept only where it is honest, for an answer every word of which is in
  the gold. HotpotQA's token F1 pays for listing candidates (recall 1 at any precision, and the harmonic mean
  makes a two-option hedge worth 2/3 where either option alone is worth 1 or 0). Measured, HotpotQA sample, 30
  tasks, answers read: ``hedge_answer`` R 0.382 vs ``honest`` 0.356 under F1 (task 0.225 vs 0.147); under gated
  recall 0.329 vs 0.352 (task 0.067 vs 0.133), and on synthetic 0.326 vs 0.403 (0.357 vs 0.418 under F1).
  Scoring an answer longer than the gold by its precision makes hedging no better in expectation than committing
  to the likeliest candidate, but measured it still beat the audit's weak reader (0.367 vs 0.355), so a longer
  answer scores 0. ``"f1"`` and ``"fuzzy"`` (which is at least F1) remain for comparison, and choosing either
  warns (:class:`~agemem_gym.errors.GameableRewardWarning`).
- P: P_rounds (Eq. 26) once when a limit ends the episode, P_overflow once at the first overflow, and a
  format-error penalty per malformed action or failed call (ours); R_task is P_no-answer (Eq. 17) without an
  answer.

>>> f1_score("the Orvel bridge", "Orvel Bridge"), gated_recall("Orvel", "Orvel Bridge")
(1.0, 0.5)
>>> resolve_weights("released_weights")
RewardWeights(task=0.5, context=0.15, memory=0.15, efficiency=0.2)
"""

from __future__ import annotations

import re
import string
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, get_args

from rapidfuzz import fuzz

from agemem_gym._validate import check_field
from agemem_gym.context import summary_body
from agemem_gym.errors import ConfigError, GameableRewardWarning
from agemem_gym.rewards.grounding import Collection, FactSet, GroundingConfig, key_terms, quality, terms_present
from agemem_gym.text import STOPWORDS
from agemem_gym.tools import TOOL_NAMES, result_material

if TYPE_CHECKING:
    from agemem_gym.tools import ToolResult

__all__ = [
    "REWARD_PRESETS",
    "AnswerMetric",
    "EpisodeLedger",
    "Judge",
    "PenaltyConfig",
    "RewardRules",
    "RewardWeights",
    "compression_score",
    "context_terms",
    "efficiency_score",
    "exact_match",
    "f1_score",
    "fuzzy_score",
    "gated_recall",
    "memory_terms",
    "normalize_answer",
    "potential",
    "resolve_weights",
    "task_score",
]

AnswerMetric = Literal["gated_recall", "f1", "em", "fuzzy"]
Judge = Callable[[str, str, str], float]  # (question, prediction, gold) -> score in [0, 1]


# ---- weights and penalties ----


@dataclass(frozen=True)
class RewardWeights:
    """The weight vector w of Eq. 16 (plus an optional efficiency weight)."""

    task: float
    context: float
    memory: float
    efficiency: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            check_field(self, f.name, "number", ge=0, finite=True, label="reward weight")


REWARD_PRESETS: Mapping[str, RewardWeights] = {
    # DESIGN.md §5: uniform weights. (The paper's §4.1 uses 1.0 each; uniform 1/3 keeps R in the task's scale.)
    "paper": RewardWeights(task=1 / 3, context=1 / 3, memory=1 / 3),
    # The weights of the authors' released code. Its 0.2 tool term (a per-round call-count scale, per-tool
    # existence bonuses and a round-efficiency factor, clipped to [-0.5, 1], with the total clipped to [-1, 1]) is
    # not reproduced: it pays for calling tools at all. Our efficiency term in its place is the share of
    # well-formed turns, which calling tools cannot raise.
    "released_weights": RewardWeights(task=0.5, context=0.15, memory=0.15, efficiency=0.2),
}
_RENAMED = {"released_code": "released_weights"}


def resolve_weights(spec: str | Mapping[str, float] | RewardWeights = "paper") -> RewardWeights:
    """A preset name, a mapping with keys ``task``, ``context``, ``memory`` (and optionally ``efficiency``), or
    weights as they are. ``"released_code"`` is the old name of ``"released_weights"`` (it warns).

    Raises:
        ConfigError: Unknown preset or keys, or a negative weight.
    """
    if isinstance(spec, RewardWeights):
        return spec
    if isinstance(spec, str):
        if spec in _RENAMED:
            warnings.warn(
                f"reward preset {spec!r} is now {_RENAMED[spec]!r}: it takes the released code's weights, not its "
                "tool term (see agemem_gym.rewards)",
                DeprecationWarning,
                stacklevel=2,
            )
            spec = _RENAMED[spec]
        if spec not in REWARD_PRESETS:
            raise ConfigError(f"'reward_weights' preset must be one of {sorted(REWARD_PRESETS)}, got {spec!r}")
        return REWARD_PRESETS[spec]
    if isinstance(spec, Mapping):
        allowed = {f.name for f in fields(RewardWeights)}
        unknown = set(spec) - allowed
        missing = {"task", "context", "memory"} - set(spec)
        if unknown or missing:
            raise ConfigError(
                f"'reward_weights' mapping needs keys task, context, memory (optional: efficiency); "
                f"got unknown {sorted(unknown)} and missing {sorted(missing)}"
            )
        return RewardWeights(**{k: float(v) for k, v in spec.items()})
    raise ConfigError(f"'reward_weights' must be a preset name, a mapping or RewardWeights, got {spec!r}")


@dataclass(frozen=True)
class PenaltyConfig:
    """Penalty coefficients (paper Eq. 17 and 26; defaults as in the paper, plus a format-error penalty).

    Attributes:
        no_answer: R_task when the episode ends without a final answer (P_no-answer, Eq. 17).
        rounds: Once, when the episode runs past its turn or step limits (P_rounds, Eq. 26).
        overflow: Once, when the context first exceeds its token budget (P_overflow, Eq. 26).
        format_error: Per malformed action or failed tool call (ours; set 0.0 for the paper's R exactly).
    """

    no_answer: float = -1.0
    rounds: float = -1.0
    overflow: float = -0.5
    format_error: float = -0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            check_field(self, f.name, "number", le=0, finite=True, label="penalty")


# ---- R_task (Eq. 17): HotpotQA's official answer normalisation and metrics ----


_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace (HotpotQA's evaluation)."""
    s = s.lower().translate(_NO_PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


_SPECIAL = ("yes", "no", "noanswer")
_DIGITS = re.compile(r"\d+")
FUZZY_MIN_RATIO = 0.8  # below this a character-level match is a different answer, not a misspelling


def _token_overlap(prediction: str, gold: str) -> tuple[float, float]:
    """Token precision and recall after normalisation (0, 0 when nothing is shared or a yes/no/noanswer differs)."""
    p, g = normalize_answer(prediction), normalize_answer(gold)
    if (p in _SPECIAL or g in _SPECIAL) and p != g:
        return 0.0, 0.0
    pt, gt = p.split(), g.split()
    same = sum((Counter(pt) & Counter(gt)).values())
    if same == 0:
        return 0.0, 0.0
    return same / len(pt), same / len(gt)


def f1_score(prediction: str, gold: str) -> float:
    """Token F1 after normalisation; yes/no/noanswer must match exactly (as in HotpotQA's script)."""
    precision, recall = _token_overlap(prediction, gold)
    return 2 * precision * recall / (precision + recall) if precision else 0.0


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def fuzzy_score(prediction: str, gold: str) -> float:
    """The larger of token F1 and a misspelling-tolerant character match that verbosity cannot win.

    The character match is rapidfuzz's normalised InDel similarity of the normalised strings (``fuzz.ratio``:
    2·matches / (len(p) + len(g)), so every extra character lowers it), counted only at ≥ 0.8 and only when the
    two agree on every number ("1841" vs "1842" is a wrong year, not a typo).

    >>> fuzzy_score("Scott Derickson", "Scott Derrickson") > 0.9
    True
    >>> fuzzy_score("it was Scott Derrickson, the director of Sinister and Doctor Strange", "Scott Derrickson") < 0.5
    True
    """
    p, g = normalize_answer(prediction), normalize_answer(gold)
    if p in _SPECIAL or g in _SPECIAL:
        return float(p == g)
    ratio = fuzz.ratio(p, g) / 100.0 if p and g else 0.0
    if ratio < FUZZY_MIN_RATIO or _DIGITS.findall(p) != _DIGITS.findall(g):
        ratio = 0.0
    return max(f1_score(prediction, gold), ratio)


def gated_recall(prediction: str, gold: str) -> float:
    """Precision-gated recall, the default R_task: partial credit for a true part of the gold, none for a hedge.

    After HotpotQA's normalisation an answer scores 1 when it equals the gold; when every one of its tokens is a
    gold token (counted with repeats, as HotpotQA counts them: token precision 1) it scores the share of the gold's
    content words it holds (function words such as "and" or "of" carry no fact; a gold of function words alone
    counts all its tokens); and as soon as it holds one token the gold lacks, it scores 0. Yes/no answers match
    exactly or score 0.

    **Why it is proper, and why hedging cannot pay.** Let an agent believe the gold is g with probability π(g).
    An answer a earns nothing on any gold that lacks one of its tokens, so its expected score is at most
    P(every token of a is in the gold). Listing a second candidate b beside a keeps only the golds that hold both:
    for the usual factoid question, where no gold holds two different candidates, the list scores 0 where either
    candidate alone would have scored, so the expected score of "a, b" is 0 ≤ max(π(a), π(b)). More generally,
    adding a token t to an answer raises its score by at most 1/(content words of g) on the golds that hold t and
    forfeits all of it on those that do not, so the agent adds t only when it believes t is in the gold, which is
    the honest report. Among whole candidates the metric is exact match, so the best of them is the single most
    likely answer, worth π(a*). A report can beat it only by being a part of several likely candidates at once
    (the surname two likely people share, say): it earns Σ π(g)·share over the golds that hold it, credit for
    what the agent is sure of, never for what it lists. (So the rule is proper for "the likeliest answer, or its
    sure part", not strictly proper for the mode alone.) Token F1 is not
    proper in this sense: it pays recall 1 at any precision, so a two-option list earns 2/3 where either option
    alone earns 1 or 0 (measured: see the module docstring).

    >>> gated_recall("The Tevrand and Eldthil", "Tevrand and Eldthil"), gated_recall("Tevrand", "Tevrand and Eldthil")
    (1.0, 0.5)
    >>> gated_recall("Tevrand, Orvel", "Tevrand and Eldthil"), gated_recall("yes", "no")
    (0.0, 0.0)
    """
    p, g = normalize_answer(prediction), normalize_answer(gold)
    if p == g:  # as exact_match, the empty answer included when the gold normalises to nothing ("The")
        return 1.0
    if p in _SPECIAL or g in _SPECIAL:
        return 0.0
    pt, gt = Counter(p.split()), Counter(g.split())
    if not pt or pt - gt:  # empty, or a token the gold lacks (a repeat beyond the gold's count is one)
        return 0.0
    content = {t for t in gt if t not in STOPWORDS} or set(gt)
    return sum(pt[t] for t in content) / sum(gt[t] for t in content)


# What the reward audit (agemem_gym.evaluation.audit, 30 tasks, seed 0, answers read with reader "heuristic") measured for
# each gameable answer metric; tests/test_audit.py re-measures it, so the message stays true.
_GAMEABLE_METRICS: dict[str, str] = {
    "f1": "token F1 pays recall at any precision, so listing candidates pays (hedge_answer earns R 0.382 > "
    "honest 0.356 on the HotpotQA sample; task 0.225 vs 0.147).",
    "fuzzy": "it is at least token F1, which pays recall at any precision, so listing candidates pays "
    "(hedge_answer earns R 0.382 > honest 0.356 on the HotpotQA sample; task 0.225 vs 0.147).",
}


def _warn_if_gameable(metric: str, *, stacklevel: int = 2) -> None:
    """Warn (:class:`~agemem_gym.errors.GameableRewardWarning`) when ``metric`` is an answer metric that the reward
    audit showed can be gamed, naming the exploit and what it earned."""
    if metric in _GAMEABLE_METRICS:
        warnings.warn(
            f"answer_metric={metric!r} can be gamed: {_GAMEABLE_METRICS[metric]} Use it for comparisons and "
            "ablations only; the default 'gated_recall' is the metric the reward audit checks",
            GameableRewardWarning,
            stacklevel=stacklevel + 1,
        )


def task_score(
    prediction: str | None,
    gold: str,
    *,
    metric: AnswerMetric = "gated_recall",
    question: str = "",
    judge: Judge | None = None,
) -> float:
    """R_task in [0, 1] for a given answer (Eq. 17); ``None`` (no answer) is the caller's penalty, not scored here.

    ``"gated_recall"`` (the default) is :func:`gated_recall`, ``"f1"`` :func:`f1_score`, ``"em"``
    :func:`exact_match` and ``"fuzzy"`` :func:`fuzzy_score`. A ``judge(question, prediction, gold)`` overrides
    ``metric``.
    """
    if prediction is None:
        raise ConfigError("task_score needs an answer; score a missing one with PenaltyConfig.no_answer")
    if judge is not None:
        score = float(judge(question, prediction, gold))
        if not 0.0 <= score <= 1.0:
            raise ConfigError(f"the judge must return a score in [0, 1], got {score!r}")
        return score
    if metric == "gated_recall":
        return gated_recall(prediction, gold)
    if metric == "em":
        return exact_match(prediction, gold)
    if metric == "f1":
        return f1_score(prediction, gold)
    if metric == "fuzzy":
        return fuzzy_score(prediction, gold)
    raise ConfigError(f"'answer_metric' must be one of {list(get_args(AnswerMetric))}, got {metric!r}")


# ---- the ledger: what the agent did so far ----


@dataclass
class EpisodeLedger:
    """The running record every reward term is computed from (mutable; the env owns one per episode, and only
    :class:`RewardRules` writes it).

    Attributes:
        facts: The task's gold facts, tokenised, with the grounding rule.
        fact_titles: The paragraph title of each fact (a fact is "shown" when its paragraph is).
        key_terms: The question's key terms (for ``preservation="key_terms"``).
        shown: Facts whose paragraph the user has shared so far.
        stage1_adds: Every stage-1 Add, as written.
        seeded: The memories the episode started with (``reset(options={"memories": ...})``), as given (storage
            is measured over them).
        built: Seeded memories and stage-1 adds, as written: the store had nothing been edited (storage and
            maintenance).
        maintained: The same memories as they read now, after the agent's updates and deletes (maintenance).
        live: The store now: every memory of the episode, by id, as it reads now (memory quality).
        retrieved: The distinct memories retrieved in stage 3, as they read then (relevance).
    """

    facts: FactSet = field(default_factory=lambda: FactSet(()))
    fact_titles: tuple[str, ...] = ()
    key_terms: tuple[str, ...] = ()
    shown: frozenset[int] = frozenset()
    stage1_adds: Collection = field(default_factory=Collection)
    seeded: Collection = field(default_factory=Collection)
    built: Collection = field(default_factory=Collection)
    maintained: Collection = field(default_factory=Collection)
    live: Collection = field(default_factory=Collection)
    retrieved: Collection = field(default_factory=Collection)
    preventive: bool = False  # a SUMMARY/FILTER shortened the context before it first overflowed (Eq. 20)
    overflowed: bool = False
    compression: float | None = None  # Eq. 19, at the final answer
    preservation: float | None = None  # Eq. 21, at the final answer
    task: float | None = None  # R_task (Eq. 17), at the end
    turns: int = 0
    clean_turns: int = 0  # well formed, and every call succeeded
    calls: int = 0
    calls_ok: int = 0
    penalty: float = 0.0
    tool_counts: Counter[str] = field(default_factory=Counter)
    stage_tool_counts: tuple[Counter[str], Counter[str], Counter[str]] = field(
        default_factory=lambda: (Counter(), Counter(), Counter())
    )  # tool calls by stage (1, 2, 3), failed ones included, as tool_counts
    error_counts: Counter[str] = field(default_factory=Counter)
    tokens_peak: int = 0


def compression_score(tokens_used: int, budget: int) -> float:
    """Eq. 19: max(0, 1 − T_used / T_max)."""
    return max(0.0, 1.0 - tokens_used / budget)


def context_terms(ledger: EpisodeLedger) -> dict[str, float]:
    """Compression (Eq. 19), preventive (Eq. 20) and preservation (Eq. 21); R_context is their mean (Eq. 18)."""
    return {
        "compression": ledger.compression or 0.0,
        "preventive": float(ledger.preventive),
        "preservation": ledger.preservation or 0.0,
    }


def memory_terms(ledger: EpisodeLedger) -> dict[str, float]:
    """Storage (Eq. 23), maintenance (Eq. 24) and relevance (Eq. 25); R_memory is their mean (Eq. 22).

    See the module docstring for what each measures. Each is 0 before the agent has done the thing it measures.
    """
    shown = ledger.shown
    built = ledger.built.quality(shown).f1
    maintenance = ledger.maintained.quality(shown).f1 - built
    # What the stage-1 adds improved (Eq. 23 over the store the agent was given; the adds' F1 without seeds).
    storage = built - ledger.seeded.quality(shown).f1 if len(ledger.seeded) else ledger.stage1_adds.quality(shown).f1
    retrieved = ledger.retrieved.quality(ledger.facts.all)
    return {
        "storage": storage,
        "maintenance": maintenance,
        "relevance": retrieved.f1,
    }


def efficiency_score(ledger: EpisodeLedger) -> float:
    """Share of the agent's turns that were well formed with every tool call succeeding (0 before any turn)."""
    return ledger.clean_turns / ledger.turns if ledger.turns else 0.0


def _mean(values: Iterable[float]) -> float:
    v = list(values)
    return sum(v) / len(v)


def potential(ledger: EpisodeLedger, weights: RewardWeights) -> dict[str, float]:
    """The weighted shaping terms of Φ(s), by name; Φ(s) is their sum. All are 0 for a fresh ledger."""
    return _weighted(context_terms(ledger), memory_terms(ledger), efficiency_score(ledger), weights)


def _weighted(
    context: Mapping[str, float], memory: Mapping[str, float], efficiency: float, weights: RewardWeights
) -> dict[str, float]:
    return {
        "context": weights.context * _mean(context.values()),
        "memory": weights.memory * _mean(memory.values()),
        "efficiency": weights.efficiency * efficiency,
    }


# ---- the rules: what each event counts for ----

# What the context the agent answers from holds, for preservation: what the user shared, what tools brought in
# (retrieved memories, without the status lines) and summaries (without their header). Not the agent's own action
# text or replies, not error feedback, and not the stage-3 question (every policy has it).
_MATERIAL: dict[str, Callable[[str], str]] = {
    "material": str,
    "distractor": str,
    "tool_result": result_material,
    "summary": summary_body,
}


@dataclass(frozen=True)
class RewardRules:
    """Every reward rule in one place: the env feeds events in, the ledger keeps their consequences.

    Args:
        weights: w of Eq. 16.
        penalties: P's coefficients.
        grounding: When a sentence holds a gold fact; which preservation check to use.
        answer_metric: How the final answer is scored.
        judge: Optional ``(question, prediction, gold) -> [0, 1]`` replacing ``answer_metric``.
    """

    weights: RewardWeights = field(default_factory=lambda: REWARD_PRESETS["paper"])
    penalties: PenaltyConfig = field(default_factory=PenaltyConfig)
    grounding: GroundingConfig = field(default_factory=GroundingConfig)
    answer_metric: AnswerMetric = "gated_recall"
    judge: Judge | None = None

    def __post_init__(self) -> None:
        check_field(self, "weights", RewardWeights, fix="e.g. resolve_weights('paper')")
        check_field(self, "penalties", PenaltyConfig, fix="e.g. PenaltyConfig()")
        check_field(self, "grounding", GroundingConfig, fix="e.g. GroundingConfig()")
        check_field(self, "answer_metric", choices=get_args(AnswerMetric))
        if self.judge is not None and not callable(self.judge):
            raise ConfigError(f"'judge' must be a callable (question, prediction, gold) -> float, got {self.judge!r}")

    def new_ledger(self, facts: Sequence[str], fact_titles: Sequence[str], question: str) -> EpisodeLedger:
        """A fresh ledger for one task (Φ = 0)."""
        if len(facts) != len(fact_titles):
            raise ConfigError(f"one title per fact: got {len(facts)} facts and {len(fact_titles)} titles")
        return EpisodeLedger(
            facts=FactSet(facts, self.grounding, titles=sorted(set(fact_titles))),
            fact_titles=tuple(fact_titles),
            key_terms=key_terms(question),
        )

    # ---- events ----
    def show(self, ledger: EpisodeLedger, titles: Iterable[str]) -> None:
        """The user shares the paragraphs with these titles (the stage-1 material): their facts are now shown."""
        titles = set(titles)
        ledger.shown = ledger.shown | {i for i, t in enumerate(ledger.fact_titles) if t in titles}

    def seed(self, ledger: EpisodeLedger, memory_id: str, content: str) -> None:
        """A memory the episode starts with (``reset(options={"memories": ...})``): in the store as built and in
        memory quality; the agent's storage counts only what its adds improve over such memories."""
        grounded = ledger.facts.ground(content)
        for store in (ledger.live, ledger.seeded, ledger.built, ledger.maintained):
            store.put(memory_id, grounded)

    def turn(self, ledger: EpisodeLedger, stage: int, results: Sequence[ToolResult], error: str | None) -> float:
        """Record one agent turn (its tool results, or the code of a malformed action); returns its penalty.

        Answers are recorded by :meth:`final_answer` (stage 3) or need nothing (a reply in stages 1 and 2).
        """
        ledger.turns += 1
        penalty = 0.0
        if error is not None and not results:  # the action itself was malformed
            ledger.error_counts[error] += 1
            return self.penalties.format_error
        for result in results:
            penalty += self._tool(ledger, stage, result)
        if error is None and all(r.ok for r in results):
            ledger.clean_turns += 1
        return penalty

    def _tool(self, ledger: EpisodeLedger, stage: int, result: ToolResult) -> float:
        if result.name in TOOL_NAMES:
            ledger.tool_counts[result.name] += 1
            ledger.stage_tool_counts[stage - 1][result.name] += 1
        ledger.calls += 1
        if not result.ok:
            assert result.error is not None
            ledger.error_counts[result.error.code.value] += 1
            return self.penalties.format_error
        ledger.calls_ok += 1
        data = result.data
        if result.name == "Add_memory" and data["action"] == "added":
            grounded = ledger.facts.ground(data["content"])
            ledger.live.put(data["id"], grounded)
            if stage == 1:  # Eq. 23 scores the LTM-construction stage
                for store in (ledger.stage1_adds, ledger.built, ledger.maintained):
                    store.put(data["id"], grounded)
        # Eq. 24 scores edits made before the question: once it is asked, deleting whatever it does not need
        # "improves" the store against this question's facts by hindsight (measured: +0.28 maintenance on
        # synthetic for deleting every memory not retrieved), and forgets everything else.
        elif result.name == "Update_memory":
            grounded = ledger.facts.ground(data["content"])
            ledger.live.put(data["id"], grounded)
            if data["id"] in ledger.maintained and stage < 3:
                ledger.maintained.put(data["id"], grounded)
        elif result.name == "Delete_memory" and data["deleted"]:
            ledger.live.pop(data["id"])
            if stage < 3:
                ledger.maintained.pop(data["id"])
        elif result.name == "Retrieve_memory" and stage == 3:  # Eq. 25 scores retrieval for the question
            for hit in data["hits"]:
                if hit["id"] not in ledger.retrieved:
                    known = ledger.live.get(hit["id"])
                    ledger.retrieved.put(hit["id"], known if known is not None else ledger.facts.ground(hit["content"]))
        elif result.name in ("Summary_context", "Filter_context") and not ledger.overflowed:
            # Eq. 20: the context was made shorter before it overflowed.
            ledger.preventive |= data["tokens_after"] < data["tokens_before"]
        return 0.0

    def context(self, ledger: EpisodeLedger, tokens: int, budget: int) -> float:
        """The context's size after a step; returns P_overflow the first time it exceeds ``budget`` (Eq. 26)."""
        ledger.tokens_peak = max(ledger.tokens_peak, tokens)
        if not ledger.overflowed and tokens > budget:
            ledger.overflowed = True
            return self.penalties.overflow
        return 0.0

    def final_answer(
        self,
        ledger: EpisodeLedger,
        answer: str,
        gold: str,
        question: str,
        messages: Iterable[tuple[str, str]],
        tokens: int,
        budget: int,
    ) -> float:
        """Score the stage-3 answer against the context it was given (``(kind, content)`` pairs, before the
        answer is added). Returns the task term w_task · R_task; compression and preservation are set."""
        ledger.turns += 1
        ledger.clean_turns += 1
        ledger.compression = compression_score(tokens, budget)
        kept = [_MATERIAL[kind](content) for kind, content in messages if kind in _MATERIAL]
        if self.grounding.preservation == "key_terms":
            ledger.preservation = terms_present(ledger.key_terms, " ".join([*kept, question]))
        else:
            held = quality((ledger.facts.ground(c) for c in kept if c), ledger.facts.all)
            ledger.preservation = held.f1 if self.grounding.preservation == "f1" else held.recall
        ledger.task = task_score(answer, gold, metric=self.answer_metric, question=question, judge=self.judge)
        return self.weights.task * ledger.task

    def reply(self, ledger: EpisodeLedger) -> None:
        """A well-formed reply that closes a stage-1 or stage-2 user turn."""
        ledger.turns += 1
        ledger.clean_turns += 1

    def truncate(self, ledger: EpisodeLedger) -> tuple[float, float]:
        """The episode ends without an answer: returns (P_rounds, w_task · P_no-answer) and records R_task."""
        ledger.task = self.penalties.no_answer  # P_no-answer (Eq. 17)
        return self.penalties.rounds, self.weights.task * ledger.task  # P_rounds (Eq. 26)

    # ---- reading the ledger ----
    def potential(self, ledger: EpisodeLedger) -> dict[str, float]:
        """Φ(s) by term (see :func:`potential`)."""
        return potential(ledger, self.weights)

    def measure(self, ledger: EpisodeLedger) -> tuple[dict[str, float], dict[str, float]]:
        """Every unweighted term (:meth:`terms`) and Φ(s) by term, from one evaluation of the ledger."""
        ctx, mem, eff = context_terms(ledger), memory_terms(ledger), efficiency_score(ledger)
        terms = {**ctx, **mem, "efficiency": eff, "task": ledger.task if ledger.task is not None else 0.0}
        return terms, _weighted(ctx, mem, eff, self.weights)

    def terms(self, ledger: EpisodeLedger) -> dict[str, float]:
        """Every unweighted term now, by name (task is 0 until the episode ends)."""
        return self.measure(ledger)[0]

    def episode_reward(self, ledger: EpisodeLedger) -> float:
        """R(τ) in closed form (Eq. 16) from the ledger; once the episode has ended it equals the sum of its step
        rewards."""
        task = ledger.task if ledger.task is not None else 0.0
        return self.weights.task * task + sum(self.potential(ledger).values()) + ledger.penalty

    def memory_quality(self, ledger: EpisodeLedger) -> dict[str, float]:
        """The paper's MQ of the live store against every gold fact (precision, recall, F1), judged like storage.

        Counts the memories the episode knows (seeded through ``reset`` options or written by the agent), so it
        costs O(memories that hold a fact), whatever the store's size.
        """
        return ledger.live.quality(ledger.facts.all)._asdict()

    def summary(self, ledger: EpisodeLedger) -> dict[str, Any]:
        """The reward part of ``info["episode"]``."""
        ctx, mem = context_terms(ledger), memory_terms(ledger)
        return {
            "task_score": ledger.task if ledger.task is not None else self.penalties.no_answer,
            "R_context": _mean(ctx.values()),
            "R_memory": _mean(mem.values()),
            "R_efficiency": efficiency_score(ledger),
            "penalty": ledger.penalty,
            "terms": {**ctx, **mem},
            "memory_quality": self.memory_quality(ledger),
        }
