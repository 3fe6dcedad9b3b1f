"""The reward audit: degenerate policies that see only what an agent sees earn less than honest memory use."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401  (registers the ids)
from agemem_gym.errors import ConfigError, GameableRewardWarning
from agemem_gym.evaluation.audit import (
    ANSWER_GAMES,
    AUDIT_POLICIES,
    COSMETIC_VARIANTS,
    DEGENERATE_POLICIES,
    REFERENCE,
    SEEDED_GAMES,
    audit_table,
    gold_notes,
    make_audit_policy,
    reward_audit,
)
from agemem_gym.rewards.grounding import GroundingConfig
from tests.data_paths import HOTPOT_SAMPLE, requires_hotpot

EPISODES = 30


def _audit(env_id: str, reader: str, **kwargs: Any) -> dict[str, dict[str, Any]]:
    env = gym.make(env_id, **kwargs)
    rows = reward_audit(env, episodes=EPISODES, seed=0, reader=reader)  # type: ignore[arg-type]
    return {r["policy"]: r for r in rows}


def _check(table: dict[str, dict[str, Any]]) -> None:
    honest = table["honest"]["R"]
    for name, row in table.items():
        assert row["sum_gap"] < 1e-9, f"{name}: step rewards do not sum to R(τ)"
        if name != "oracle":
            assert table["oracle"]["R"] > row["R"], f"the oracle must be on top, {name} is not below it"
    assert table["no_memory"]["R"] < honest
    for name in DEGENERATE_POLICIES:
        if name in ANSWER_GAMES or name in SEEDED_GAMES:
            continue  # they game the answer metric or a seeded store: checked below, with the reader on or seeds
        ref = table[REFERENCE[name]]["R"]
        assert table[name]["R"] < ref, f"{name} earns {table[name]['R']:.3f} >= {REFERENCE[name]} {ref:.3f}"
    for name in COSMETIC_VARIANTS:
        assert table[name]["R"] <= honest + 1e-9, f"{name} earns {table[name]['R']:.3f} > honest {honest:.3f}"


def test_reward_audit_on_synthetic() -> None:
    """Synthetic suite, answers held fixed ("unknown"): no degenerate policy or cosmetic variant beats honest."""
    _check(_audit("AgeMem-Synthetic-v0", "none"))


@requires_hotpot
def test_reward_audit_on_real_hotpotqa() -> None:
    """The same on the HotpotQA sample."""
    _check(_audit("AgeMem-HotpotQA-v0", "none", data_path=str(HOTPOT_SAMPLE)))


@pytest.mark.parametrize("metric", ["gated_recall", "f1", "fuzzy"])
def test_verbose_answers_do_not_pay(metric: str) -> None:
    """With answers read from the retrieved memories, answering with all of them scores below a short answer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GameableRewardWarning)  # f1 and fuzzy warn: tested below
        env = gym.make("AgeMem-Synthetic-v0", episode={"answer_metric": metric})
    rows = {r["policy"]: r for r in reward_audit(env, ["honest", "verbose_answer"], episodes=EPISODES)}
    assert rows["verbose_answer"]["task"] < rows["honest"]["task"] / 2
    assert rows["verbose_answer"]["R"] < rows["honest"]["R"]


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("AgeMem-Synthetic-v0", {}),
        pytest.param("AgeMem-HotpotQA-v0", {"data_path": str(HOTPOT_SAMPLE)}, marks=requires_hotpot),
    ],
)
def test_hedged_answers_do_not_pay_under_exact_match(env_id: str, kwargs: dict[str, Any]) -> None:
    """Listing candidates (both options, or every name the reader finds) scores below a committed answer under EM."""
    env = gym.make(env_id, episode={"answer_metric": "em"}, **kwargs)
    rows = {r["policy"]: r for r in reward_audit(env, ["honest", "hedge_answer"], episodes=EPISODES)}
    assert rows["hedge_answer"]["task"] < rows["honest"]["task"]
    assert rows["hedge_answer"]["R"] < rows["honest"]["R"]


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("AgeMem-Synthetic-v0", {}),
        pytest.param("AgeMem-HotpotQA-v0", {"data_path": str(HOTPOT_SAMPLE)}, marks=requires_hotpot),
    ],
)
def test_hedged_answers_do_not_pay_under_the_default(env_id: str, kwargs: dict[str, Any]) -> None:
    """Under the default task metric (precision-gated recall), listing candidates earns less than committing to
    one, in the task term and in R, with answers read from the retrieved memories."""
    env = gym.make(env_id, **kwargs)
    assert env.unwrapped.episode_config.answer_metric == "gated_recall"
    rows = {r["policy"]: r for r in reward_audit(env, ["honest", "hedge_answer", "verbose_answer"], episodes=EPISODES)}
    for name in ("hedge_answer", "verbose_answer"):
        assert rows[name]["task"] < rows["honest"]["task"], f"{name} task {rows[name]['task']:.3f}"
        assert rows[name]["R"] < rows["honest"]["R"], f"{name} R {rows[name]['R']:.3f}"


@requires_hotpot
@pytest.mark.parametrize("metric", ["f1", "fuzzy"])
def test_gameable_metrics_warn_and_the_hedge_they_name_is_real(metric: str) -> None:
    """Choosing token F1 (or fuzzy, which is at least F1) warns, and the figures the warning gives are the audit's:
    on the HotpotQA sample (30 tasks, answers read) hedge_answer earns more than honest under it, and less under
    the default."""
    with pytest.warns(GameableRewardWarning, match=f"answer_metric='{metric}' can be gamed") as caught:
        gamed = gym.make("AgeMem-HotpotQA-v0", data_path=str(HOTPOT_SAMPLE), episode={"answer_metric": metric})
    message = str(caught[0].message)
    rows = {}
    for env in (gamed, gym.make("AgeMem-HotpotQA-v0", data_path=str(HOTPOT_SAMPLE))):
        table = reward_audit(env, ["honest", "hedge_answer"], episodes=EPISODES)
        rows[env.unwrapped.episode_config.answer_metric] = {r["policy"]: r for r in table}
    assert rows[metric]["hedge_answer"]["R"] > rows[metric]["honest"]["R"]
    for name, row in rows[metric].items():
        assert f"{row['R']:.3f}" in message and f"{row['task']:.3f}" in message, (name, message)
    assert rows["gated_recall"]["hedge_answer"]["R"] < rows["gated_recall"]["honest"]["R"]


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("AgeMem-Synthetic-v0", {}),
        pytest.param("AgeMem-HotpotQA-v0", {"data_path": str(HOTPOT_SAMPLE)}, marks=requires_hotpot),
    ],
)
def test_seeded_store_pays_no_double_credit(env_id: str, kwargs: dict[str, Any]) -> None:
    """Episodes that start with the gold paragraphs' notes: storage + maintenance is the final store's quality less
    the seeds' for every policy (re-adding a seeded note earns nothing), so swapping the seeds for one's own copies
    earns less than adding only what the store lacks."""
    env = gym.make(env_id, **kwargs)
    names = ["honest", "seed_aware", *SEEDED_GAMES, "no_memory"]
    rows = {r["policy"]: r for r in reward_audit(env, names, episodes=EPISODES, reader="none", memories=gold_notes)}
    credit = {n: r["storage"] + r["maintenance"] - r["MQ_f1"] for n, r in rows.items()}
    assert all(abs(c - credit["no_memory"]) < 1e-9 for c in credit.values()), credit
    for name in SEEDED_GAMES:
        assert rows[name]["sum_gap"] < 1e-9
        assert rows[name]["R"] < rows[REFERENCE[name]]["R"], f"{name} earns {rows[name]['R']:.3f}"


def test_audit_table_and_names() -> None:
    """The table renders every policy; unknown names and the oracle without an env raise with the fix."""
    env = gym.make("AgeMem-Synthetic-v0")
    rows = reward_audit(env, ["honest", "random"], episodes=2)
    text = audit_table(rows)
    assert text.splitlines()[0].startswith("| policy | R | task | compression")
    assert "| honest |" in text and "| random |" in text
    assert set(REFERENCE) == set(DEGENERATE_POLICIES) | set(COSMETIC_VARIANTS) <= set(AUDIT_POLICIES)
    with pytest.raises(ConfigError, match="unknown audit policy 'nope'"):
        make_audit_policy("nope")
    with pytest.raises(ConfigError, match=r"pass env=env\.unwrapped"):
        make_audit_policy("oracle")


@pytest.mark.parametrize(("preservation", "exploit"), [("recall", "padding_blob"), ("key_terms", "summary_wipe")])
def test_preservation_ablations_warn_and_are_gameable(preservation: str, exploit: str) -> None:
    """The two ablations of preservation warn that they can be gamed, and the exploit the warning names is real:
    it earns at least the honest policy's R under the ablation, and less than it under the default."""
    with pytest.warns(GameableRewardWarning, match=rf"preservation='{preservation}' can be gamed: .*{exploit}"):
        grounding = GroundingConfig(preservation=preservation)  # type: ignore[arg-type]
    rows = {}
    for config in (grounding, GroundingConfig()):
        env = gym.make("AgeMem-Synthetic-v0", grounding=config)
        table = reward_audit(env, ["honest", exploit], episodes=EPISODES, seed=0, reader="none")
        rows[config.preservation] = {r["policy"]: r["R"] for r in table}
    assert rows[preservation][exploit] >= rows[preservation]["honest"]
    assert rows["f1"][exploit] < rows["f1"]["honest"]


def test_default_grounding_does_not_warn() -> None:
    """The default setting, the one the audit above checks, raises no gameable-reward warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", GameableRewardWarning)
        GroundingConfig()
        env = gym.make("AgeMem-Synthetic-v0")
        env.reset(seed=0, options={"max_tool_rounds": 3})
