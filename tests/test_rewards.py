"""Tests of the reward terms (paper App. A.2), answer metrics and fact grounding, each against hand values."""

from __future__ import annotations

import pytest

from agemem_gym.errors import ConfigError
from agemem_gym.grounding import GroundingConfig, facts_held, holds_fact, key_terms, memory_quality, terms_present
from agemem_gym.rewards import (
    EpisodeLedger,
    PenaltyConfig,
    RewardWeights,
    compression_score,
    context_terms,
    efficiency_score,
    exact_match,
    f1_score,
    memory_terms,
    normalize_answer,
    potential,
    resolve_weights,
    task_score,
)

FACT = "Scott Derrickson (born July 16, 1966) is an American director, screenwriter and producer."


def test_normalize_answer_drops_case_punctuation_and_articles() -> None:
    """HotpotQA's normalisation: lower case, no punctuation, no a/an/the, single spaces."""
    assert normalize_answer("  The  Orvel-Bridge, an Icon! ") == "orvelbridge icon"


@pytest.mark.parametrize(
    ("pred", "gold", "f1"),
    [
        ("Orvel Bridge", "the Orvel Bridge", 1.0),
        ("Orvel", "Orvel Bridge", 2 * (1.0 * 0.5) / 1.5),
        ("bridge of Orvel", "Orvel Bridge", 2 * (2 / 3 * 1.0) / (2 / 3 + 1.0)),
        ("yes", "no", 0.0),
        ("yes it is", "yes", 0.0),
        ("1841", "1842", 0.0),
    ],
)
def test_f1_score_matches_hand_values(pred: str, gold: str, f1: float) -> None:
    """Token F1 as in HotpotQA's script, including the yes/no exact-match rule."""
    assert f1_score(pred, gold) == pytest.approx(f1)


def test_exact_match_uses_normalisation() -> None:
    """EM compares normalised strings."""
    assert exact_match("The Orvel Bridge.", "orvel bridge") == 1.0
    assert exact_match("Orvel", "Orvel Bridge") == 0.0


def test_task_score_metrics_and_judge() -> None:
    """F1 is the default; fuzzy credits wrapped answers; a judge overrides the metric and is range-checked."""
    assert task_score("Orvel", "Orvel Bridge") == pytest.approx(2 / 3)
    assert task_score("Orvel", "Orvel Bridge", metric="em") == 0.0
    assert task_score("it was the Orvel Bridge, I think", "Orvel Bridge", metric="fuzzy") == 1.0
    assert task_score("no", "yes", metric="fuzzy") == 0.0
    assert task_score("x", "y", judge=lambda q, p, g: 0.25) == 0.25
    with pytest.raises(ConfigError, match=r"judge must return a score in \[0, 1\], got 2.0"):
        task_score("x", "y", judge=lambda q, p, g: 2.0)
    with pytest.raises(ConfigError, match="'answer_metric'"):
        task_score("x", "y", metric="bleu")  # type: ignore[arg-type]


def test_compression_is_eq_19() -> None:
    """max(0, 1 − T_used / T_max)."""
    assert compression_score(2048, 8192) == 0.75
    assert compression_score(9000, 8192) == 0.0


def test_weight_presets_and_custom_weights() -> None:
    """Presets resolve by name; mappings need task/context/memory; bad names and values raise with the rule."""
    assert resolve_weights("paper") == RewardWeights(1 / 3, 1 / 3, 1 / 3)
    assert resolve_weights({"task": 1, "context": 0, "memory": 0}) == RewardWeights(1.0, 0.0, 0.0)
    with pytest.raises(ConfigError, match="preset must be one of"):
        resolve_weights("nope")
    with pytest.raises(ConfigError, match=r"missing \['memory'\]"):
        resolve_weights({"task": 1, "context": 1})
    with pytest.raises(ConfigError, match="'task' must be a finite number >= 0, got -1"):
        RewardWeights(-1, 0, 0)
    with pytest.raises(ConfigError, match="penalty 'rounds' must be a finite number <= 0, got 1"):
        PenaltyConfig(rounds=1)


def test_fresh_ledger_has_zero_potential() -> None:
    """Φ(s_0) = 0: no term is earned before the agent acts (the shaping identity depends on it)."""
    ledger = EpisodeLedger()
    for preset in ("paper", "released_code"):
        assert sum(potential(ledger, resolve_weights(preset)).values()) == 0.0


def test_terms_follow_their_equations() -> None:
    """Storage, maintenance, relevance, preventive, efficiency computed from a hand-built ledger."""
    ledger = EpisodeLedger(
        added={"m_0001": True, "m_0002": False, "m_0003": True, "m_0004": True},
        useful_maintenance=1,
        retrieved=5,
        retrieved_relevant=2,
        preventive=True,
        compression=0.5,
        preservation=1.0,
        calls=4,
        calls_ok=3,
    )
    assert memory_terms(ledger) == {"storage": 0.75, "maintenance": 1.0, "relevance": 0.4}
    assert context_terms(ledger) == {"compression": 0.5, "preventive": 1.0, "preservation": 1.0}
    assert efficiency_score(ledger) == 0.75
    phi = potential(ledger, RewardWeights(task=0.5, context=0.15, memory=0.15, efficiency=0.2))
    assert phi["context"] == pytest.approx(0.15 * 2.5 / 3)
    assert phi["memory"] == pytest.approx(0.15 * 2.15 / 3)
    assert phi["efficiency"] == pytest.approx(0.2 * 0.75)


def test_holds_fact_by_recall_or_condensed_restatement() -> None:
    """A memory holds a fact when it covers most of it, or restates it in fewer words; a name alone does not."""
    assert holds_fact(FACT, FACT)
    assert holds_fact("Scott Derrickson, born 1966, American director", FACT)
    assert holds_fact("Scott Derrickson is an American film director.", FACT)
    assert not holds_fact("Scott Derrickson", FACT)
    assert not holds_fact("Woodson is a census-designated place in Arkansas.", FACT)
    assert not holds_fact("", FACT)
    strict = GroundingConfig(min_recall=0.9, min_precision=1.0, min_overlap=5)
    assert not holds_fact("Scott Derrickson is an American film director.", FACT, strict)


def test_memory_quality_precision_recall_f1() -> None:
    """Precision over items, recall over facts, their harmonic mean."""
    facts = [FACT, "Edward Davis Wood Jr. was an American filmmaker, actor, writer, producer, and director."]
    items = [FACT, "Pulaski County is in Arkansas.", "Scott Derrickson was born July 16, 1966 in America."]
    assert facts_held(items[2], facts) == frozenset({0})
    q = memory_quality(items, facts)
    assert q["precision"] == pytest.approx(2 / 3) and q["recall"] == 0.5
    assert q["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert memory_quality([], facts) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_key_terms_and_presence() -> None:
    """Key terms are names, quoted titles and numbers; presence is the share found in the text."""
    assert key_terms('The director of the romantic comedy "Big Stone Gap" is based in what New York city?') == (
        "Big Stone Gap",
        "New York",
    )
    assert key_terms("Is the Bank of America older than 1950?") == ("Bank of America", "1950")
    assert key_terms("how many members does the band have") == ("many", "members", "band")
    assert terms_present(("Big Stone Gap", "New York"), "big stone gap is in virginia") == 0.5
    assert terms_present((), "anything") == 1.0
