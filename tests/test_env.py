"""Tests of the AgeMem env: Gymnasium contract, three-stage semantics, rewards identity, limits, snapshots."""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agemem_gym
from agemem_gym.env import AgeMemEnv
from agemem_gym.errors import ConfigError
from agemem_gym.evaluation.agents import NoMemoryPolicy, OraclePolicy, RagPolicy, RandomPolicy, answer, tool_call
from agemem_gym.protocol import ErrorCode

from .data_paths import HOTPOT_SAMPLE, requires_hotpot

SMALL = {"stage1_distractors": 1, "stage2_paragraphs": 2, "paragraphs_per_turn": 1, "max_tool_rounds": 3}


def make(env_id: str = "AgeMem-Synthetic-v0", **kwargs: Any) -> gym.Env[str, str]:
    if env_id == "AgeMem-HotpotQA-v0":
        kwargs.setdefault("data_path", str(HOTPOT_SAMPLE))
    return gym.make(env_id, **kwargs)


def run(env: gym.Env[str, str], policy: Any, seed: int, options: dict[str, Any] | None = None) -> list[Any]:
    """Run one episode; returns [(obs, reward, terminated, truncated, info), ...] including the reset."""
    obs, info = env.reset(seed=seed, options=options)
    policy.reset(info)
    out: list[Any] = [(obs, info)]
    while True:
        obs, r, term, trunc, info = env.step(policy.act(obs, info))
        out.append((obs, r, term, trunc, info))
        if term or trunc:
            return out


def test_ids_are_registered_on_import() -> None:
    """Importing the package registers both ids, and the module:id form works too."""
    assert {"AgeMem-HotpotQA-v0", "AgeMem-Synthetic-v0"} <= set(gym.registry)
    env = gym.make("agemem_gym:AgeMem-Synthetic-v0")
    assert isinstance(env.unwrapped, AgeMemEnv)
    assert agemem_gym.ENV_IDS


@pytest.mark.parametrize("env_id", ["AgeMem-Synthetic-v0", pytest.param("AgeMem-HotpotQA-v0", marks=requires_hotpot)])
def test_check_env_passes(env_id: str) -> None:
    """Gymnasium's own checker accepts every registered id."""
    check_env(make(env_id).unwrapped, skip_render_check=False)


def test_hotpotqa_without_data_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With no data anywhere, making the HotpotQA env fails with instructions, not a traceback from deep inside."""
    monkeypatch.delenv("AGEMEM_HOTPOTQA_PATH", raising=False)
    monkeypatch.setenv("AGEMEM_CACHE_DIR", str(tmp_path))
    with pytest.raises(agemem_gym.errors.DataError, match="agemem-download hotpotqa"):
        gym.make("AgeMem-HotpotQA-v0")


def test_seeded_rollouts_are_identical() -> None:
    """Two envs reset with the same seed and fed the same actions give identical observations, rewards, infos."""
    a, b = make(), make()
    ra, rb = run(a, RandomPolicy(7), seed=3), run(b, RandomPolicy(7), seed=3)
    assert len(ra) == len(rb)
    for x, y in zip(ra, rb):
        assert x == y


def test_same_task_id_gives_same_start_whatever_the_seed() -> None:
    """K envs reset with one task id share their start exactly (GRPO groups)."""
    env = make()
    tid = env.unwrapped.suite.task_ids[5]  # type: ignore[attr-defined]
    starts = {env.reset(seed=s, options={"task_id": tid})[0] for s in range(4)}
    assert len(starts) == 1
    other = env.reset(seed=0, options={"task_id": tid, "material_seed": 1})[0]
    assert other not in starts


def test_unknown_task_id_and_option_raise() -> None:
    """A bad task id or option is a programmer error with a clear message."""
    env = make()
    with pytest.raises(ConfigError, match="task_id 'nope' is not in suite"):
        env.reset(options={"task_id": "nope"})
    with pytest.raises(ConfigError, match=r"unknown episode setting\(s\) \['bogus'\]"):
        env.reset(options={"bogus": 1})
    with pytest.raises(ConfigError, match="'max_steps' must be an int >= 1, got 0"):
        env.reset(options={"max_steps": 0})


def test_three_stages_reset_context_but_keep_memory() -> None:
    """Stage 2 starts from the system prompt with the store intact; stage 3 continues stage 2's context."""
    env = make(episode=SMALL)
    obs, info = env.reset(seed=0)
    assert info["stage"] == 1 and [m["role"] for m in info["messages"]] == ["system", "user"]
    obs, r, term, trunc, info = env.step(tool_call(("Add_memory", {"content": "Remember this."})))
    assert info["memory_size"] == 1 and "m_0001" in obs
    stage2_first: list[dict[str, str]] | None = None
    while info["stage"] == 1:
        obs, r, term, trunc, info = env.step(answer("ok"))
        if info["stage"] == 2:
            stage2_first = info["messages"]
    assert stage2_first is not None and [m["role"] for m in stage2_first] == ["system", "user"]
    assert info["memory_size"] == 1
    while info["stage"] == 2:
        before = info["messages"]
        obs, r, term, trunc, info = env.step(answer("ok"))
    assert info["messages"][: len(before)] == before  # stage 3 continues the context
    assert "question for you" in info["messages"][-1]["content"]
    obs, r, term, trunc, info = env.step(answer("x"))
    assert term and not trunc and "episode" in info


def test_step_after_end_and_before_reset_raise() -> None:
    """Stepping without an episode is a programmer error."""
    env = AgeMemEnv(make().unwrapped.suite)  # type: ignore[attr-defined]
    with pytest.raises(gym.error.ResetNeeded):
        env.step(answer("x"))


def test_malformed_action_is_typed_fed_back_and_penalised() -> None:
    """A broken turn yields an error code, a tool message for the agent, and the format penalty."""
    env = make()
    env.reset(seed=0)
    obs, r, term, trunc, info = env.step("no tags here")
    assert info["action_error"] == ErrorCode.NO_ACTION.value
    assert info["messages"][-1]["role"] == "tool" and "no_action" in info["messages"][-1]["content"]
    assert info["reward_components"]["penalty"] == pytest.approx(-0.1) and r == pytest.approx(-0.1)
    obs, r, term, trunc, info = env.step(tool_call(("Delete_memory", {"memory_id": "m_0042", "confirmation": True})))
    assert info["action_error"] == "unknown_memory_id" and info["call_errors"] == ["unknown_memory_id"]


def test_tool_round_limit_truncates_with_reason_and_penalties() -> None:
    """More non-answer turns than allowed on one user message truncates, costing P_rounds and P_no-answer."""
    env = make(episode={**SMALL, "max_tool_rounds": 2})
    env.reset(seed=0)
    for _ in range(2):
        *_, trunc, info = env.step(tool_call(("Retrieve_memory", {"query": "x"})))
        assert not trunc
    obs, r, term, trunc, info = env.step(tool_call(("Retrieve_memory", {"query": "x"})))
    assert trunc and not term and info["truncation_reason"] == "tool_round_limit"
    ep = info["episode"]
    assert ep["task_score"] == -1.0 and ep["penalty"] == pytest.approx(-1.0)
    assert info["reward_components"]["task"] == pytest.approx(-1 / 3)


def test_max_steps_truncates() -> None:
    """Reaching max_steps without the final answer truncates with reason max_steps."""
    env = make(episode={**SMALL, "max_steps": 3})
    env.reset(seed=0)
    for _ in range(2):
        *_, trunc, info = env.step(answer("ok"))
        assert not trunc
    *_, trunc, info = env.step(answer("ok"))
    assert trunc and info["truncation_reason"] == "max_steps"


def test_overflow_is_penalised_once() -> None:
    """Exceeding the context budget costs P_overflow once, and the episode goes on."""
    env = make(episode={**SMALL, "context_budget": 300})
    env.reset(seed=0)
    penalties = []
    for _ in range(3):
        *_, info = env.step(answer("ok"))
        penalties.append(info["reward_components"]["penalty"])
    assert penalties.count(-0.5) == 1 and info["episode" if "episode" in info else "stage"]


def test_info_is_fresh_and_json_serialisable() -> None:
    """Mutating a returned info does not change the env; infos hold only JSON data (no clocks, no objects)."""
    env = make()
    obs, info = env.reset(seed=0)
    info["messages"].append({"role": "user", "content": "tampered"})
    info["tools"].clear()
    *_, info2 = env.step(answer("ok"))
    assert all(m["content"] != "tampered" for m in info2["messages"]) and len(info2["tools"]) == 6
    json.dumps(info2)


def _episode_sum(env: gym.Env[str, str], policy: Any, seed: int) -> tuple[float, dict[str, Any], float]:
    steps = run(env, policy, seed)
    total = 0.0
    for _, r, _, _, info in steps[1:]:
        total += r
        assert r == pytest.approx(sum(info["reward_components"].values()), abs=1e-12)
    closed = env.unwrapped.episode_reward()  # type: ignore[attr-defined]
    return total, steps[-1][-1]["episode"], closed


@pytest.mark.parametrize("weights", ["paper", "released_weights", {"task": 1.0, "context": 0.2, "memory": 0.7}])
def test_step_rewards_sum_to_episode_reward(weights: Any) -> None:
    """For scripted and random policies, the step rewards sum to info['episode']['R'] and to the closed-form R(τ)."""
    env = make(reward_weights=weights, episode=SMALL)
    policies = [RandomPolicy(s) for s in range(6)] + [NoMemoryPolicy(), RagPolicy(), OraclePolicy(env.unwrapped)]
    for i, policy in enumerate(policies):
        total, ep, closed = _episode_sum(env, policy, seed=i)
        assert abs(total - ep["R"]) < 1e-9
        assert abs(total - closed) < 1e-9


def test_oracle_beats_baselines_on_synthetic() -> None:
    """The oracle earns more than no-memory and random on the synthetic suite (every term near the top)."""
    env = make()
    scores: dict[str, list[dict[str, Any]]] = {}
    for name, policy in [
        ("oracle", OraclePolicy(env.unwrapped)),
        ("no_memory", NoMemoryPolicy()),
        ("random", RandomPolicy(0)),
    ]:
        scores[name] = [run(env, policy, seed)[-1][-1]["episode"] for seed in range(5)]
    mean = {k: float(np.mean([e["R"] for e in v])) for k, v in scores.items()}
    assert mean["oracle"] > mean["no_memory"] + 0.3 and mean["oracle"] > mean["random"] + 0.3
    for ep in scores["oracle"]:
        assert ep["task_score"] == 1.0 and ep["memory_quality"]["f1"] == 1.0
        # It stores exactly the gold facts, so its store cannot be improved: storage + maintenance is the whole
        # of what the two can pay (maintenance is 0, or what removing a copy of a fact recovers).
        assert ep["terms"]["storage"] + ep["terms"]["maintenance"] == pytest.approx(1.0)
        assert ep["terms"]["relevance"] == 1.0 and ep["terms"]["preventive"] == 1.0
        assert ep["terms"]["preservation"] == 1.0 and ep["penalty"] == 0.0


@requires_hotpot
def test_oracle_beats_baselines_on_real_hotpotqa() -> None:
    """On 20 real HotpotQA questions the oracle is near the top on every term; no-memory and random are far below."""
    env = make("AgeMem-HotpotQA-v0")
    task_ids = env.unwrapped.suite.task_ids[:20]  # type: ignore[attr-defined]
    scores: dict[str, list[dict[str, Any]]] = {}
    for name, policy in [
        ("oracle", OraclePolicy(env.unwrapped)),
        ("no_memory", NoMemoryPolicy()),
        ("random", RandomPolicy(0)),
    ]:
        scores[name] = [run(env, policy, 0, {"task_id": t})[-1][-1]["episode"] for t in task_ids]
    mean = {k: float(np.mean([e["R"] for e in v])) for k, v in scores.items()}
    # Measured at this commit: oracle 0.87, no_memory 0.09, random -1.6. (R_memory's ceiling is 2/3: storage +
    # maintenance together pay at most 1, for the best store.)
    assert mean["oracle"] > 0.8
    assert mean["oracle"] > mean["no_memory"] + 0.5 and mean["oracle"] > mean["random"] + 1.0
    for ep in scores["oracle"]:
        assert ep["task_score"] == 1.0 and ep["penalty"] == 0.0
        assert ep["memory_quality"]["f1"] > 0.9 and ep["R_memory"] > 0.6 and ep["R_context"] > 0.8
    assert max(e["memory_quality"]["recall"] for e in scores["no_memory"]) == 0.0
    assert all(e["task_score"] < 1.0 for e in scores["random"])


def test_get_state_set_state_reproduces_the_rest_exactly() -> None:
    """Restoring a mid-episode snapshot (also after pickling) replays the remaining steps identically."""
    env = make(episode=SMALL)
    obs, info = env.reset(seed=1)
    policy = RandomPolicy(3)
    for content in ("first fact", "second fact", "third fact"):
        env.step(tool_call(("Add_memory", {"content": content})))
        obs, *_, info = env.step(answer("ok"))
    state = pickle.loads(pickle.dumps(env.unwrapped.get_state()))  # type: ignore[attr-defined]
    actions = [policy.act(obs, info) for _ in range(40)]

    def rest() -> list[Any]:
        out = []
        for a in actions:
            step = env.step(a)
            out.append(step)
            if step[2] or step[3]:
                break
        return out

    first = rest()
    env.unwrapped.set_state(state)  # type: ignore[attr-defined]
    second = rest()
    assert first == second
    with pytest.raises(ConfigError, match="set_state expects a snapshot"):
        env.unwrapped.set_state({"version": 99})  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec_runs(mode: str) -> None:
    """gym.make_vec works in sync and async modes (async with shared_memory=False) and autoresets."""
    kwargs: dict[str, Any] = {"vector_kwargs": {"shared_memory": False}} if mode == "async" else {}
    envs = gym.make_vec("AgeMem-Synthetic-v0", num_envs=2, vectorization_mode=mode, episode=SMALL, **kwargs)
    try:
        obs, info = envs.reset(seed=0)
        assert len(obs) == 2 and all(isinstance(o, str) and o.startswith("[system]") for o in obs)
        for _ in range(12):
            obs, r, term, trunc, info = envs.step([answer("ok"), answer("ok")])
        assert len(r) == 2 and np.isfinite(r).all()
    finally:
        envs.close()


def test_render_ansi_returns_the_observation() -> None:
    """render_mode='ansi' renders the same text as the observation."""
    env = make(render_mode="ansi")
    obs, _ = env.reset(seed=0)
    assert env.render() == obs


def test_constructor_validates_arguments() -> None:
    """Bad constructor arguments raise with the rule, the value and the fix."""
    with pytest.raises(ConfigError, match="'prompt_style' must be 'paper' or 'compact'"):
        make(prompt_style="short")
    with pytest.raises(ConfigError, match=r"'episode': unknown field\(s\) \['rounds'\]"):
        make(episode={"rounds": 5})
    with pytest.raises(ConfigError, match="'reward_weights' preset must be one of"):
        make(reward_weights="best")


def test_nested_settings_may_be_plain_mappings() -> None:
    """JSON-style kwargs reach nested configs: store={"dedup": {...}} turns on the near-duplicate policy."""
    env = make(store={"dedup": {"policy": "merge"}}, episode=SMALL)
    env.reset(seed=0)
    assert env.unwrapped.store.config.dedup.policy == "merge"  # type: ignore[attr-defined]
    add = tool_call(("Add_memory", {"content": "The Orvel Bridge opened in 1841."}))
    env.step(add)
    _, _, _, _, info = env.step(add)
    assert "duplicates m_0001" in info["messages"][-1]["content"] and len(env.unwrapped.store) == 1  # type: ignore[attr-defined]


def test_compact_prompt_is_shorter() -> None:
    """The compact system prompt costs fewer tokens than the paper-style one."""
    full = make().reset(seed=0)[1]["context_tokens"]
    compact = make(prompt_style="compact").reset(seed=0)[1]["context_tokens"]
    assert compact < full / 2


_actions = st.one_of(
    st.text(max_size=200),
    st.sampled_from([answer("ok"), answer("yes")]),
    st.builds(
        lambda name, args: tool_call((name, args)),
        st.sampled_from(
            [
                "Add_memory",
                "Update_memory",
                "Delete_memory",
                "Retrieve_memory",
                "Summary_context",
                "Filter_context",
                "Clear_context",
                "Nope",
            ]
        ),
        st.dictionaries(
            st.sampled_from(
                [
                    "content",
                    "memory_id",
                    "confirmation",
                    "query",
                    "top_k",
                    "span",
                    "criteria",
                    "summary",
                    "metadata",
                    "metadata_filter",
                ]
            ),
            st.one_of(
                st.text(max_size=30),
                st.integers(-3, 12),
                st.booleans(),
                st.none(),
                st.just("m_0001"),
                st.just("all"),
                st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
            ),
            max_size=4,
        ),
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_actions, min_size=1, max_size=60), st.integers(0, 50))
def test_arbitrary_action_streams_never_raise_and_always_end(actions: list[str], seed: int) -> None:
    """Full episodes of arbitrary text: no exception, every error typed, rewards finite and summing to R."""
    env = make(episode={**SMALL, "max_steps": 60})
    env.reset(seed=seed)
    codes = {c.value for c in ErrorCode}
    total, i, done = 0.0, 0, False
    while not done:
        obs, r, term, trunc, info = env.step(actions[i % len(actions)])
        i += 1
        assert np.isfinite(r)
        total += r
        assert info["action_error"] is None or info["action_error"] in codes
        assert set(info["call_errors"]) <= codes
        done = term or trunc
    assert abs(total - info["episode"]["R"]) < 1e-9


def test_contract_check_script_passes() -> None:
    """The shared contract check (a floor of DESIGN.md §3 and §6) reports no failure."""
    script = Path(__file__).resolve().parents[1].parent / "shared" / "checks" / "contract_check.py"
    if not script.exists():
        pytest.skip(f"the shared contract check is not beside the checkout ({script})")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 failures" in done.stdout


def test_state_snapshot_is_independent_of_later_steps() -> None:
    """A snapshot is a deep copy: stepping after get_state does not change it."""
    env = make()
    env.reset(seed=0)
    state = env.unwrapped.get_state()  # type: ignore[attr-defined]
    frozen = copy.deepcopy(state["episode"].ledger)
    env.step(tool_call(("Add_memory", {"content": "x y z"})))
    assert state["episode"].ledger == frozen


def test_seeded_memories_start_the_store_and_count_in_memory_quality() -> None:
    """options['memories'] fills long-term memory before stage 1; memory quality matches a direct computation."""
    from agemem_gym.rewards.grounding import memory_quality

    env = make(episode=SMALL)
    task = env.unwrapped.suite[0]  # type: ignore[attr-defined]
    memories = [task.supporting_sentences[0], {"content": "An unrelated note.", "metadata": {"src": "old"}}]
    obs, info = env.reset(seed=0, options={"task_id": task.task_id, "memories": memories})
    assert info["memory_size"] == 2
    steps = run(env, NoMemoryPolicy(), 0, {"task_id": task.task_id, "memories": memories})
    ep = steps[-1][-1]["episode"]
    titles = sorted({f.title for f in task.supporting_facts})
    direct = memory_quality([m.content for m in env.unwrapped.store], task.supporting_sentences, titles=titles)  # type: ignore[attr-defined]
    assert ep["memory_quality"] == direct and 0.5 < direct["precision"] < 1.0  # weighted by content words
    assert ep["terms"]["storage"] == 0.0  # seeded memories are not the agent's storage decisions
    with pytest.raises(ConfigError, match=r"options\['memories'\]\[0\] must be a string or a mapping"):
        env.reset(options={"memories": [3]})


def test_memory_quality_tracks_updates_and_deletes() -> None:
    """The env's incremental memory quality equals the direct computation after adds, updates and deletes."""
    from agemem_gym.rewards.grounding import memory_quality

    env = make(episode=SMALL)
    task = env.unwrapped.suite[3]  # type: ignore[attr-defined]
    env.reset(seed=0, options={"task_id": task.task_id})
    facts = task.supporting_sentences
    titles = sorted({f.title for f in task.supporting_facts})
    base = env.unwrapped
    env.step(tool_call(("Add_memory", {"content": facts[0]}), ("Add_memory", {"content": "noise words here"})))
    env.step(tool_call(("Update_memory", {"memory_id": "m_0002", "content": facts[-1]})))
    env.step(tool_call(("Delete_memory", {"memory_id": "m_0001", "confirmation": True})))
    got = base.rules.memory_quality(base._ep.ledger)  # type: ignore[attr-defined]
    assert got == memory_quality([m.content for m in base.store], facts, titles=titles)  # type: ignore[attr-defined]


def _stage2_leaks(env: gym.Env[str, str]) -> tuple[int, int]:
    base: Any = env.unwrapped
    leaks = 0
    for task in base.suite:  # the material reset() lays out, without building a store for each task
        shared, _ = base._material(task, base.episode_config, 0)
        leaks += any(task.mentions_answer(p) for chunk in shared[1] for p in chunk)
    return leaks, len(base.suite)


def test_stage2_never_states_the_answer_on_synthetic() -> None:
    """Stage 2 is not reset before the question, so its material never mentions the gold answer (was 175/1000)."""
    assert _stage2_leaks(make()) == (0, 1000)


@requires_hotpot
def test_stage2_never_states_the_answer_on_real_hotpotqa() -> None:
    """The same on the HotpotQA sample (was 183/1000 before distractors that mention it moved to stage 1)."""
    assert _stage2_leaks(make("AgeMem-HotpotQA-v0")) == (0, 1000)


def test_snapshot_pickles_with_a_judge_callable() -> None:
    """The reward rules (and a judge lambda) stay out of the snapshot, so get_state() still pickles and restores."""
    env = make(judge=lambda q, p, g: 0.5, episode=SMALL)
    env.reset(seed=0)
    env.step(tool_call(("Add_memory", {"content": "x y z"})))
    state = pickle.loads(pickle.dumps(env.unwrapped.get_state()))  # type: ignore[attr-defined]
    env.unwrapped.set_state(state)  # type: ignore[attr-defined]
    assert env.step(answer("ok"))[4]["stage"] in (1, 2)


# ---- issue 15: agent text that used to crash a step ----

ISSUE_ACTIONS = {
    "string_args_big_int": "<tool_call>"
    + json.dumps({"name": "Add_memory", "arguments": '{"content": "x", "n": ' + "1" * 4301 + "}"})
    + "</tool_call>",
    "string_args_deep": "<tool_call>" + json.dumps({"name": "Add_memory", "arguments": "[" * 3000}) + "</tool_call>",
    "escaped_surrogate": '<tool_call>{"name": "Add_memory", "arguments": {"content": "bad \\ud800 text"}}</tool_call>',
    "raw_surrogate": "<answer>bad \ud800 answer</answer>",
    "surrogate_in_summary": '<tool_call>{"name": "Summary_context", "arguments": {"span": "all", "summary": "\\udc00"}}'
    "</tool_call>",
}
ISSUE_CODES = {
    "string_args_big_int": "bad_call",
    "string_args_deep": "bad_call",
    "escaped_surrogate": "invalid_unicode",
    "raw_surrogate": "invalid_unicode",
    "surrogate_in_summary": "invalid_unicode",
}


def _utf8_clean(obs: str, info: dict[str, Any]) -> None:
    obs.encode("utf-8")
    json.dumps(info, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("name", list(ISSUE_ACTIONS))
def test_issue_actions_are_typed_errors_with_the_format_penalty(name: str) -> None:
    """Each action of issue 15 is rejected with its code, feedback and the format penalty; nothing is stored and
    the observation and info stay valid UTF-8."""
    env = make(episode=SMALL)
    env.reset(seed=0)
    obs, reward, term, trunc, info = env.step(ISSUE_ACTIONS[name])
    assert info["action_error"] == ISSUE_CODES[name] and not term and not trunc
    assert info["reward_components"]["penalty"] == env.unwrapped.penalties.format_error  # type: ignore[attr-defined]
    assert info["messages"][-1]["role"] == "tool" and ISSUE_CODES[name] in info["messages"][-1]["content"]
    assert info["memory_size"] == 0
    _utf8_clean(obs, info)
    obs, *_, info = env.step(answer("next"))  # the env carries on
    _utf8_clean(obs, info)


def test_async_vector_env_survives_issue_actions() -> None:
    """In an async vector env the workers live through every issue-15 action and keep stepping."""
    envs = gym.make_vec(
        "AgeMem-Synthetic-v0",
        num_envs=2,
        vectorization_mode="async",
        vector_kwargs={"shared_memory": False},
        episode={**SMALL, "max_tool_rounds": 10},
    )
    try:
        envs.reset(seed=0)
        for name, action in ISSUE_ACTIONS.items():
            obs, _, _, _, info = envs.step((action, action))
            assert list(info["action_error"]) == [ISSUE_CODES[name]] * 2
        obs, *_ = envs.step((answer("x"), answer("x")))
        assert all(isinstance(o, str) and o for o in obs)
    finally:
        envs.close()


_surrogate_text = st.text(
    alphabet=st.one_of(st.characters(), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)), max_size=20
)
_hostile = st.one_of(
    _surrogate_text.map(lambda t: tool_call(("Add_memory", {"content": t}))),
    _surrogate_text.map(lambda t: answer(t) if t.strip() else answer("x")),
    _surrogate_text.map(lambda t: "<tool_call>" + json.dumps({"name": "Add_memory", "arguments": t}) + "</tool_call>"),
    st.integers(0, 5000).map(
        lambda n: "<tool_call>" + json.dumps({"name": "Add_memory", "arguments": "[" * n}) + "</tool_call>"
    ),
    st.integers(4290, 4310).map(
        lambda n: (
            "<tool_call>"
            + json.dumps({"name": "Retrieve_memory", "arguments": '{"query": "q", "top_k": ' + "7" * n + "}"})
            + "</tool_call>"
        )
    ),
    st.sampled_from(
        [
            *ISSUE_ACTIONS.values(),
            '<tool_call>{"name": "Retrieve_memory", "arguments": {"query": "q", "top_k": NaN}}</tool_call>',
            '<tool_call>{"name": "Add_memory", "arguments": {"content": "x", "metadata": {"a": -Infinity}}}</tool_call>',
            '<tool_call>{"name": "Add_memory", "arguments": {"content": "<think>kept</think> verbatim"}}</tool_call>',
        ]
    ),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_hostile, min_size=1, max_size=12))
def test_hostile_text_never_raises_and_everything_stays_utf8(actions: list[str]) -> None:
    """Surrogates, string-encoded deep or huge arguments, NaN, and the issue's actions: no step raises, every error
    is typed, every observation, info and snapshot is valid UTF-8 and deep-copyable, the recording replays
    exactly, and the trainer's chat encoding takes the final context."""
    import tempfile

    from agemem_gym.evaluation.recorder import RecordEpisodes, load_episodes, replay
    from agemem_gym.trainers.models import tiny_tokenizer
    from agemem_gym.trainers.policy import encode_chat

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "eps.jsonl"
        env = RecordEpisodes(make(episode={**SMALL, "max_tool_rounds": 20}), path)
        env.reset(seed=1)
        codes = {c.value for c in ErrorCode}
        for action in actions:
            obs, r, term, trunc, info = env.step(action)
            assert info["action_error"] is None or info["action_error"] in codes
            _utf8_clean(obs, info)
            if term or trunc:
                break
        copy.deepcopy(env.unwrapped.get_state())  # type: ignore[attr-defined]
        env.close()
        (episode,) = load_episodes(path)
        assert episode.actions == actions[: len(episode.actions)] and replay(episode).matches
    encode_chat(tiny_tokenizer(), info["messages"])


def test_a_task_with_lone_surrogates_is_refused_before_any_reset() -> None:
    """A task whose id or text holds lone surrogates cannot be built, so reset() never meets one."""
    from agemem_gym.task import Paragraph, SupportingFact, Task

    fact = SupportingFact("T", 0, "T is here.")
    with pytest.raises(ConfigError, match=r"task_id holds lone UTF-16 surrogates"):
        Task("t\ud800", "Where is T?", "here", (fact,), (Paragraph("T", ("T is here.",)),))
    with pytest.raises(ConfigError, match=r"paragraph 'T' holds lone UTF-16 surrogates"):
        Task("t0", "Where is T?", "here", (fact,), (Paragraph("T", ("T is \udfff.",)),))


def test_async_make_vec_with_default_settings_is_a_clear_error() -> None:
    """Async make_vec at Gymnasium's default shared_memory=True raises ConfigError naming the fix (before any
    worker starts), instead of a worker dying on KeyError('['); with the fix it steps exactly like sync."""
    import multiprocessing

    with pytest.raises(ConfigError, match=r"pass vector_kwargs=\{'shared_memory': False\}"):
        gym.make_vec("AgeMem-Synthetic-v0", num_envs=2, vectorization_mode="async")
    assert multiprocessing.active_children() == []
    action = tool_call(("Add_memory", {"content": "[brackets] and café"}))
    results = []
    for mode, kwargs in (("sync", {}), ("async", {"shared_memory": False})):
        envs = gym.make_vec("AgeMem-Synthetic-v0", num_envs=2, vectorization_mode=mode, vector_kwargs=kwargs)
        envs.reset(seed=0)
        results.append(envs.step((action, action))[0])
        envs.close()
    assert results[0] == results[1] and "[brackets] and café" in results[0][0]


# ---- the fixed train / held-out split ----


def test_split_parts_are_disjoint_cover_the_suite_and_do_not_depend_on_its_size() -> None:
    from agemem_gym.envs.synthetic import make_synthetic_suite

    suite = make_synthetic_suite(200, seed=0, difficulty="easy")
    train, heldout = suite.split("train"), suite.split("heldout")
    assert set(train.task_ids).isdisjoint(heldout.task_ids)
    assert sorted(train.task_ids + heldout.task_ids) == sorted(suite.task_ids)
    assert 0.1 < len(heldout) / len(suite) < 0.3  # heldout_fraction 0.2, by hash
    bigger = make_synthetic_suite(400, seed=0, difficulty="easy").split("heldout")
    assert set(heldout.task_ids) == set(bigger.task_ids) & set(suite.task_ids)  # a task's part is its own
    assert suite.split("all") is suite
    with pytest.raises(ConfigError, match="'split' must be"):
        suite.split("test")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="heldout_fraction"):
        suite.split("train", heldout_fraction=1.0)


def test_env_split_argument_draws_only_from_its_part() -> None:
    env = gym.make("AgeMem-Synthetic-v0", n_tasks=50, split="heldout")
    held = set(env.unwrapped.suite.task_ids)  # type: ignore[attr-defined]
    drawn = {env.reset(seed=s)[1]["task_id"] for s in range(20)}
    env.close()
    assert drawn <= held and len(held) < 50
