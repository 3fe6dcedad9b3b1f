"""Tests of the reward terms (paper App. A.2), answer metrics and fact grounding, each against hand values."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from agemem_gym.env import EpisodeConfig
from agemem_gym.errors import ConfigError, GameableRewardWarning
from agemem_gym.protocol import ActionError, ErrorCode, ToolCall
from agemem_gym.rewards import (
    EpisodeLedger,
    PenaltyConfig,
    RewardRules,
    RewardWeights,
    compression_score,
    context_terms,
    efficiency_score,
    exact_match,
    f1_score,
    gated_recall,
    memory_terms,
    normalize_answer,
    potential,
    resolve_weights,
    task_score,
)
from agemem_gym.rewards.grounding import (
    GroundingConfig,
    facts_held,
    holds_fact,
    key_terms,
    memory_quality,
    terms_present,
)
from agemem_gym.text import content_words
from agemem_gym.tools import ToolResult

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


@pytest.mark.parametrize(
    ("pred", "gold", "score"),
    [
        ("The Tevrand and Eldthil.", "Tevrand and Eldthil", 1.0),  # exact after normalisation
        ("Eldthil and Tevrand", "Tevrand and Eldthil", 1.0),  # every gold word, in another order
        ("Tevrand", "Tevrand and Eldthil", 0.5),  # a strict part: half the gold's content words
        ("Tevrand and", "Tevrand and Eldthil", 0.5),  # a function word adds no credit
        ("and", "Tevrand and Eldthil", 0.0),  # nor is one worth anything alone
        ("Tevrand, Orvel", "Tevrand and Eldthil", 0.0),  # hedged: one word the gold lacks costs everything
        ("Tevrand or Eldthil", "Tevrand and Eldthil", 0.0),
        ("Tevrand Tevrand", "Tevrand and Eldthil", 0.0),  # a repeat beyond the gold's count is a wrong token
        ("Orvel Bridge, Mabeni Viaduct", "Orvel Bridge", 0.0),  # two candidates, one of them right
        ("River Zelvon", "Zelvon", 0.0),  # extra words: as EM, whatever they are
        ("1841", "1841", 1.0),
        ("1842", "1841", 0.0),
        ("yes", "yes", 1.0),
        ("yes", "no", 0.0),
        ("yes no", "yes", 0.0),  # yes/no: exact only
        ("no", "no man's land", 0.0),
        ("The", "the", 1.0),  # a gold that normalises to nothing: exact match, as EM
        ("", "Orvel Bridge", 0.0),
        ("one", "one", 1.0),  # a gold of function words alone counts all its tokens
    ],
)
def test_gated_recall_matches_hand_values(pred: str, gold: str, score: float) -> None:
    """Precision-gated recall: 1 on an exact match, the share of the gold for a strict part, 0 with a wrong token."""
    assert gated_recall(pred, gold) == pytest.approx(score)
    assert exact_match(pred, gold) <= gated_recall(pred, gold) <= 1.0


def test_gated_recall_never_pays_a_hedge() -> None:
    """Adding a candidate to an answer never raises its score, and a hedge between two options scores 0 whichever
    is the gold, where committing to one scores 1 or 0 (F1 pays the hedge 2/3 either way)."""
    for gold in ("Orvel Bridge", "Mabeni Viaduct"):
        assert gated_recall("Orvel Bridge or Mabeni Viaduct", gold) == 0.0
        assert f1_score("Orvel Bridge or Mabeni Viaduct", gold) > 0.5
    for gold in ("Orvel Bridge", "Tevrand and Eldthil", "Orvel"):
        for answer in ("Orvel", "Orvel Bridge", "Tevrand", "Eldthil"):
            for extra in ("Mabeni", "Orvel Bridge", "Zelvon Eldthil"):
                if not set(normalize_answer(extra).split()) <= set(normalize_answer(gold).split()):
                    assert gated_recall(f"{answer}, {extra}", gold) == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\x00",
        "\ud800\udfff",
        "<answer>",
        "🙂" * 1000,
        "a " * 10_000,
        "the the the",
        "!!!",
        "\u200b",
        "１８４１",
    ],
)
def test_gated_recall_takes_hostile_text(text: str) -> None:
    """Agent text of any shape is scored in [0, 1], as prediction or gold, without raising."""
    for pred, gold in ((text, "Orvel Bridge"), ("Orvel Bridge", text), (text, text), (text, "yes")):
        assert 0.0 <= gated_recall(pred, gold) <= 1.0
        assert 0.0 <= task_score(pred, gold) <= 1.0


def test_gameable_answer_metrics_warn() -> None:
    """Choosing token F1 or fuzzy (which F1 bounds from below) warns with the exploit the audit measured; the
    default and EM do not, and neither does an episode override that leaves the metric alone."""
    for metric in ("f1", "fuzzy"):
        with pytest.warns(GameableRewardWarning, match=rf"answer_metric='{metric}' can be gamed: .*hedge_answer"):
            config = EpisodeConfig(answer_metric=metric)  # type: ignore[arg-type]
        with pytest.warns(GameableRewardWarning):
            EpisodeConfig().override({"answer_metric": metric})
    with warnings.catch_warnings():
        warnings.simplefilter("error", GameableRewardWarning)
        assert EpisodeConfig().answer_metric == "gated_recall" and RewardRules().answer_metric == "gated_recall"
        EpisodeConfig(answer_metric="em")
        assert config.override({"max_tool_rounds": 3}).answer_metric == "fuzzy"


def test_task_score_metrics_and_judge() -> None:
    """Gated recall is the default; fuzzy forgives misspellings, not verbosity or wrong numbers; a judge overrides
    the metric."""
    assert task_score("Orvel", "Orvel Bridge") == pytest.approx(1 / 2)
    assert task_score("Orvel", "Orvel Bridge", metric="f1") == pytest.approx(2 / 3)
    assert task_score("Orvel", "Orvel Bridge", metric="em") == 0.0
    assert task_score("Orvel Bridje", "Orvel Bridge", metric="fuzzy") == pytest.approx(11 / 12)
    assert task_score("no", "yes", metric="fuzzy") == 0.0
    assert task_score("1842", "1841", metric="fuzzy") == 0.0
    # Pasting material as the answer: the old token_set_ratio gave 1.0 here; now only the F1's share is left.
    pasted = "The Orvel Bridge was built in 1841 over the Tamsin and is a landmark of the town"
    assert task_score(pasted, "Orvel Bridge", metric="fuzzy") == pytest.approx(f1_score(pasted, "Orvel Bridge"))
    assert task_score(pasted, "Orvel Bridge", metric="fuzzy") < 0.3
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
    with pytest.warns(DeprecationWarning, match="'released_code' is now 'released_weights'"):
        assert resolve_weights("released_code") == resolve_weights("released_weights")
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
    rules = RewardRules()
    ledger = rules.new_ledger([FACT], ["Scott Derrickson"], "Who is Scott Derrickson?")
    for preset in ("paper", "released_weights"):
        assert sum(potential(ledger, resolve_weights(preset)).values()) == 0.0
    assert sum(potential(EpisodeLedger(), resolve_weights("paper")).values()) == 0.0


WOOD = "Edward Davis Wood Jr. was an American filmmaker, actor, writer, producer, and director."


def _result(name: str, data: dict[str, Any], ok: bool = True) -> ToolResult:
    return ToolResult(name, ToolCall(name, {}), ok, "", None, data)


def test_terms_follow_their_equations() -> None:
    """Storage, maintenance, relevance, preventive and efficiency from hand-fed events (values by hand)."""
    rules = RewardRules()
    ledger = rules.new_ledger([FACT, WOOD], ["Scott Derrickson", "Ed Wood"], "Were they both American?")
    rules.show(ledger, ["Scott Derrickson"])  # only the first fact has been shown
    junk = "Pulaski County is in Arkansas."  # 3 content words, none gold
    rules.turn(ledger, 1, [_result("Add_memory", {"action": "added", "id": "m_1", "content": FACT})], None)
    rules.turn(ledger, 1, [_result("Add_memory", {"action": "added", "id": "m_2", "content": junk})], None)
    n_fact = len(set(content_words(FACT)))  # 10
    p = n_fact / (n_fact + 3)
    assert memory_terms(ledger)["storage"] == pytest.approx(2 * p / (p + 1))  # recall 1 of the 1 fact shown
    rules.show(ledger, ["Ed Wood"])  # a second fact shown and not stored: recall 1/2
    assert memory_terms(ledger)["storage"] == pytest.approx(2 * p * 0.5 / (p + 0.5))
    # Deleting the junk is maintenance: the store it built is now better than as written.
    delete = _result("Delete_memory", {"id": "m_2", "deleted": True, "content": junk})
    rules.turn(ledger, 2, [delete], None)
    terms = memory_terms(ledger)
    assert terms["maintenance"] == pytest.approx(2 * 1 * 0.5 / 1.5 - 2 * p * 0.5 / (p + 0.5))
    # Stage-3 retrieval of the fact (twice: the repeat changes nothing) and of a non-gold memory.
    hits = [{"id": "m_1", "content": FACT}, {"id": "m_9", "content": junk}]
    for _ in range(2):
        rules.turn(ledger, 3, [_result("Retrieve_memory", {"hits": hits})], None)
    assert memory_terms(ledger)["relevance"] == pytest.approx(2 * p * 0.5 / (p + 0.5))
    # A summary that lengthens the context is not preventive; one that shortens it is.
    rules.turn(ledger, 2, [_result("Summary_context", {"tokens_before": 10, "tokens_after": 30})], None)
    assert context_terms(ledger)["preventive"] == 0.0
    rules.turn(ledger, 2, [_result("Filter_context", {"tokens_before": 30, "tokens_after": 12})], None)
    assert context_terms(ledger)["preventive"] == 1.0
    bad = ToolResult(
        "Delete_memory", ToolCall("Delete_memory", {}), False, "", ActionError(ErrorCode.BAD_ARGUMENTS, "x")
    )
    assert rules.turn(ledger, 2, [bad], None) == PenaltyConfig().format_error
    assert efficiency_score(ledger) == pytest.approx(7 / 8)  # 8 turns, one with a failed call


def test_stage_rules_adds_outside_stage_1_and_retrievals_before_stage_3_do_not_count() -> None:
    """Storage scores stage-1 adds only; relevance scores stage-3 retrievals only."""
    rules = RewardRules()
    ledger = rules.new_ledger([FACT], ["Scott Derrickson"], "Who?")
    rules.show(ledger, ["Scott Derrickson"])
    rules.turn(ledger, 3, [_result("Add_memory", {"action": "added", "id": "m_1", "content": FACT})], None)
    rules.turn(ledger, 1, [_result("Retrieve_memory", {"hits": [{"id": "m_1", "content": FACT}]})], None)
    assert memory_terms(ledger) == {"storage": 0.0, "maintenance": 0.0, "relevance": 0.0}
    assert rules.memory_quality(ledger)["f1"] == 1.0  # the store itself holds the fact


def test_add_then_delete_and_cosmetic_updates_earn_nothing() -> None:
    """Junk added and deleted nets exactly zero; a cosmetic update pays nothing (its padding costs a little)."""
    rules = RewardRules()

    def play(junk: bool, cosmetic: bool) -> float:
        ledger = rules.new_ledger([FACT], ["Scott Derrickson"], "Who?")
        rules.show(ledger, ["Scott Derrickson"])
        rules.turn(ledger, 1, [_result("Add_memory", {"action": "added", "id": "m_1", "content": FACT})], None)
        if junk:
            add = _result("Add_memory", {"action": "added", "id": "m_2", "content": "A note about the weather."})
            rules.turn(ledger, 1, [add], None)
            rules.turn(ledger, 2, [_result("Delete_memory", {"id": "m_2", "deleted": True})], None)
        if cosmetic:
            rules.turn(ledger, 1, [_result("Update_memory", {"id": "m_1", "content": FACT + " Noted."})], None)
        terms = memory_terms(ledger)
        return terms["storage"] + terms["maintenance"]

    honest = play(False, False)
    assert honest == 1.0
    assert play(True, False) == pytest.approx(honest)
    assert play(False, True) < honest


def test_grounding_is_sentence_level_and_two_way() -> None:
    """A sentence holds a fact when it covers it and is mostly gold; padding, soups and wrong numbers hold nothing."""
    assert holds_fact(FACT, FACT)
    assert holds_fact("Scott Derrickson, born 1966, American director", FACT)
    assert holds_fact("Scott Derrickson is an American film director.", FACT)
    assert not holds_fact("Scott Derrickson", FACT)
    assert not holds_fact("Woodson is a census-designated place in Arkansas.", FACT)
    assert not holds_fact("", FACT)
    strict = GroundingConfig(min_recall=0.9, min_precision=1.0, min_overlap=5)
    assert not holds_fact("Scott Derrickson is an American film director.", FACT, strict)
    # The fact inside a run-on "sentence" of other material (full stops removed) is not held...
    padded = FACT.rstrip(".") + " and Woodson is a census designated place in Pulaski County Arkansas United States"
    assert not holds_fact(padded, FACT)
    # ...but the same text with its sentences intact holds it, sentence by sentence.
    assert holds_fact(FACT + " Woodson is a census-designated place in Pulaski County, Arkansas.", FACT)
    assert not holds_fact("The band has 5 members.", "The band has 4 members.")
    with pytest.raises(ConfigError, match="'min_purity' must be a number in"):
        GroundingConfig(min_purity=0.0)


def test_memory_quality_is_word_weighted_with_copies_as_clutter() -> None:
    """Precision over distinct content words (a copy of a held fact counts as clutter), recall over facts."""
    facts = [FACT, WOOD]
    items = [FACT, "Pulaski County is in Arkansas.", "Scott Derrickson was born July 16, 1966 in America."]
    assert facts_held(items[2], facts) == frozenset({0})
    q = memory_quality(items, facts)
    gold = len(set(content_words(FACT)))
    total = gold + 3 + len(set(content_words(items[2])))
    assert q["precision"] == pytest.approx(gold / total) and q["recall"] == 0.5
    assert q["f1"] == pytest.approx(2 * (gold / total) * 0.5 / (gold / total + 0.5))
    assert memory_quality([], facts) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    # Merging the same sentences into one memory changes nothing.
    assert memory_quality([" ".join(items)], facts) == q


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
