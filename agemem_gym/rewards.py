"""Rewards: AgeMem's trajectory reward (paper §3.5 and App. A.2) and its potential-based per-step shaping.

The episode reward is the paper's Eq. 16:

    R(τ) = w_task·R_task + w_context·R_context + w_memory·R_memory (+ w_efficiency·R_efficiency) + P

Every term is a pure function of an :class:`EpisodeLedger`, the running record of what the agent did. Terms that
are measured "when the final answer is generated" (compression, preservation, task) are 0 until then, and the
others are 0 before the agent acts, so the potential Φ(s) = w_context·R_context(s) + w_memory·R_memory(s)
(+ w_efficiency·R_efficiency(s)) is 0 at the start. The env pays Φ(s_{t+1}) − Φ(s_t) at each step, plus the task
term and any penalty when they occur; the step rewards therefore sum exactly to R(τ), and since the shaping is a
potential difference it cannot change which policy is optimal (Ng, Harada & Russell, ICML 1999).

>>> f1_score("the Orvel bridge", "Orvel Bridge")
1.0
>>> resolve_weights("released_code")
RewardWeights(task=0.5, context=0.15, memory=0.15, efficiency=0.2)
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Literal

from rapidfuzz import fuzz

from agemem_gym.errors import ConfigError

__all__ = [
    "REWARD_PRESETS",
    "AnswerMetric",
    "EpisodeLedger",
    "Judge",
    "PenaltyConfig",
    "RewardWeights",
    "compression_score",
    "context_terms",
    "efficiency_score",
    "exact_match",
    "f1_score",
    "memory_terms",
    "normalize_answer",
    "potential",
    "resolve_weights",
    "task_score",
]

AnswerMetric = Literal["f1", "em", "fuzzy"]
Judge = Callable[[str, str, str], float]  # (question, prediction, gold) -> score in [0, 1]


# ---- weights and penalties ----


@dataclass(frozen=True)
class RewardWeights:
    """The weight vector w of Eq. 16 (plus the released code's tool-efficiency term)."""

    task: float
    context: float
    memory: float
    efficiency: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v == v or v < 0:
                raise ConfigError(f"reward weight {f.name!r} must be a finite number >= 0, got {v!r}")


REWARD_PRESETS: Mapping[str, RewardWeights] = {
    # DESIGN.md §5: uniform weights. (The paper's §4.1 uses 1.0 each; uniform 1/3 keeps R in the task's scale.)
    "paper": RewardWeights(task=1 / 3, context=1 / 3, memory=1 / 3),
    # The weights of the authors' released code, with its tool-efficiency term.
    "released_code": RewardWeights(task=0.5, context=0.15, memory=0.15, efficiency=0.2),
}


def resolve_weights(spec: str | Mapping[str, float] | RewardWeights = "paper") -> RewardWeights:
    """A preset name, a mapping with keys ``task``, ``context``, ``memory`` (and optionally ``efficiency``), or
    weights as they are.

    Raises:
        ConfigError: Unknown preset or keys, or a negative weight.
    """
    if isinstance(spec, RewardWeights):
        return spec
    if isinstance(spec, str):
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
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v == v or v > 0:
                raise ConfigError(f"penalty {f.name!r} must be a finite number <= 0, got {v!r}")


# ---- R_task (Eq. 17): HotpotQA's official answer normalisation and metrics ----


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace (HotpotQA's evaluation)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


_SPECIAL = ("yes", "no", "noanswer")


def f1_score(prediction: str, gold: str) -> float:
    """Token F1 after normalisation; yes/no/noanswer must match exactly (as in HotpotQA's script)."""
    p, g = normalize_answer(prediction), normalize_answer(gold)
    if (p in _SPECIAL or g in _SPECIAL) and p != g:
        return 0.0
    pt, gt = p.split(), g.split()
    common = Counter(pt) & Counter(gt)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pt), same / len(gt)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def task_score(
    prediction: str | None,
    gold: str,
    *,
    metric: AnswerMetric = "f1",
    question: str = "",
    judge: Judge | None = None,
) -> float:
    """R_task in [0, 1] for a given answer (Eq. 17); ``None`` (no answer) is the caller's penalty, not scored here.

    ``"fuzzy"`` takes the larger of F1 and rapidfuzz's ``token_set_ratio`` of the normalised strings, which credits
    answers that wrap the gold span in extra words. A ``judge(question, prediction, gold)`` overrides ``metric``.
    """
    if prediction is None:
        raise ConfigError("task_score needs an answer; score a missing one with PenaltyConfig.no_answer")
    if judge is not None:
        score = float(judge(question, prediction, gold))
        if not 0.0 <= score <= 1.0:
            raise ConfigError(f"the judge must return a score in [0, 1], got {score!r}")
        return score
    if metric == "em":
        return exact_match(prediction, gold)
    if metric == "f1":
        return f1_score(prediction, gold)
    if metric == "fuzzy":
        p, g = normalize_answer(prediction), normalize_answer(gold)
        if p in _SPECIAL or g in _SPECIAL:
            return float(p == g)
        return max(f1_score(prediction, gold), fuzz.token_set_ratio(p, g) / 100.0 if p and g else 0.0)
    raise ConfigError(f"'answer_metric' must be 'f1', 'em' or 'fuzzy', got {metric!r}")


# ---- the ledger: what the agent did so far ----


@dataclass
class EpisodeLedger:
    """The running record every reward term is computed from (mutable; the env owns one per episode)."""

    added: dict[str, bool] = field(default_factory=dict)  # memory id -> its (latest) content holds a gold fact
    maintenance_ops: int = 0
    useful_maintenance: int = 0
    retrieved: int = 0
    retrieved_relevant: int = 0
    preventive: bool = False  # a SUMMARY/FILTER ran before the context first overflowed (Eq. 20)
    overflowed: bool = False
    compression: float | None = None  # Eq. 19, at the final answer
    preservation: float | None = None  # Eq. 21, at the final answer
    task: float | None = None  # R_task (Eq. 17), at the end
    calls: int = 0
    calls_ok: int = 0
    penalty: float = 0.0
    tool_counts: Counter[str] = field(default_factory=Counter)
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

    Storage is the share of added items that hold a gold supporting fact; maintenance is 1 once an UPDATE or
    DELETE was useful (see the env: it kept or improved gold coverage); relevance is the share of retrieved
    items that hold a gold supporting fact. Each is 0 before the agent has done the thing it measures.
    """
    return {
        "storage": sum(ledger.added.values()) / max(1, len(ledger.added)),
        "maintenance": float(ledger.useful_maintenance > 0),
        "relevance": ledger.retrieved_relevant / ledger.retrieved if ledger.retrieved else 0.0,
    }


def efficiency_score(ledger: EpisodeLedger) -> float:
    """Share of tool calls that ran without error (the released code's tool-efficiency term, as we read it)."""
    return ledger.calls_ok / ledger.calls if ledger.calls else 0.0


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def potential(ledger: EpisodeLedger, weights: RewardWeights) -> dict[str, float]:
    """The weighted shaping terms of Φ(s), by name; Φ(s) is their sum. All are 0 for a fresh ledger."""
    return {
        "context": weights.context * _mean(list(context_terms(ledger).values())),
        "memory": weights.memory * _mean(list(memory_terms(ledger).values())),
        "efficiency": weights.efficiency * efficiency_score(ledger),
    }
