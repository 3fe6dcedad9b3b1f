"""Tests of the step records (agemem_gym.step_records): schema, R(τ), groups, tokens, JSONL round trip, validation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym.errors import ConfigError, DataError
from agemem_gym.evaluation.agents import NoMemoryPolicy, OraclePolicy, RandomPolicy
from agemem_gym.step_records import (
    RECORD_FIELDS,
    SCHEMA_VERSION,
    collect_records,
    read_records,
    tokenize_step,
    validate_record,
    write_records,
)

SMALL = {"stage1_distractors": 0, "stage2_paragraphs": 1, "max_tool_rounds": 2}
TASKS = ["syn-medium-s0-000003", "syn-medium-s0-000007"]


def make_env() -> gym.Env[str, str]:
    return gym.make("AgeMem-Synthetic-v0", n_tasks=16, episode=SMALL)


def oracle_records(**kwargs: Any) -> list[dict[str, Any]]:
    env = make_env()
    return list(collect_records(env, OraclePolicy(env.unwrapped), TASKS, group_size=2, **kwargs))


def test_one_record_per_turn_with_terminal_reward_everywhere() -> None:
    """Every trajectory's records share R(τ), which equals the sum of its step rewards and the env's episode R."""
    recs = oracle_records()
    trajs: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        validate_record(r)
        trajs.setdefault(r["trajectory_id"], []).append(r)
    assert len(trajs) == 4
    for steps in trajs.values():
        assert [s["step"] for s in steps] == list(range(len(steps)))
        assert [s["is_last"] for s in steps] == [False] * (len(steps) - 1) + [True]
        total = math.fsum(s["reward"] for s in steps)
        assert {s["episode_reward"] for s in steps} == {steps[0]["episode_reward"]}
        assert steps[0]["episode_reward"] == pytest.approx(total, abs=1e-9)
        assert steps[0]["return_to_go"] == pytest.approx(total, abs=1e-9)
        assert steps[-1]["return_to_go"] == pytest.approx(steps[-1]["reward"])
        assert steps[-1]["terminated"] and {1, 2, 3} == {s["stage"] for s in steps}


def test_group_shares_its_start_and_ids_are_stable() -> None:
    """The K trajectories of a group start from the same prompt, and ids name group and trajectory."""
    recs = oracle_records()
    firsts = [r for r in recs if r["step"] == 0]
    assert [r["trajectory_id"] for r in firsts] == [f"g{g}-{t}/k{k}" for g, t in enumerate(TASKS) for k in range(2)]
    assert firsts[0]["messages"] == firsts[1]["messages"] and firsts[0]["group_id"] == firsts[1]["group_id"]
    assert firsts[0]["messages"] != firsts[2]["messages"]
    assert set(RECORD_FIELDS) == set(firsts[0]) and firsts[0]["schema_version"] == SCHEMA_VERSION


def test_prompt_is_the_context_after_the_agents_own_edits() -> None:
    """The prompt of the turn after a Filter_context no longer holds what the filter removed."""
    recs = oracle_records()
    traj = [r for r in recs if r["trajectory_id"] == recs[0]["trajectory_id"]]
    i = next(i for i, r in enumerate(traj) if "Filter_context" in r["response"])
    assert len(traj[i + 1]["messages"]) < len(traj[i]["messages"]) + 2


def test_callable_policy_and_deterministic_collection() -> None:
    """A messages -> text callable works, and two collections with the same seeds are identical."""

    def always_answer(messages: list[dict[str, Any]]) -> str:
        return f"<answer>ok {len(messages)}</answer>"

    env = make_env()
    a = list(collect_records(env, always_answer, TASKS[:1], group_size=2, seed=3))
    b = list(collect_records(env, always_answer, TASKS[:1], group_size=2, seed=3))
    assert a == b and all(r["response"].startswith("<answer>ok") for r in a)


def test_turn_cap_ends_a_trajectory_through_the_env() -> None:
    """The collector's own cap marks the last record, with R(τ) the sum of the steps taken: the env ends the
    episode, so the last record is truncated and carries P_rounds and w_task·P_no-answer, as when the env's own
    max_steps truncates the same turns."""
    env = make_env()
    recs = list(collect_records(env, RandomPolicy(seed=1, malformed=0.0), TASKS[:1], group_size=1, max_turns=2))
    assert len(recs) == 2 and recs[-1]["is_last"]
    assert recs[-1]["truncated"] and not recs[-1]["terminated"] and not recs[0]["truncated"]
    assert recs[0]["episode_reward"] == pytest.approx(recs[0]["reward"] + recs[1]["reward"])
    for rec in recs:
        validate_record(rec)  # the closing step's components join the last record's: they still sum to its reward
    twin = gym.make("AgeMem-Synthetic-v0", n_tasks=16, episode={**SMALL, "max_steps": 2})
    twin.reset(seed=0, options={"task_id": TASKS[0], "material_seed": 0})
    steps = [twin.step(rec["response"]) for rec in recs]
    assert steps[-1][3] and steps[-1][4]["truncation_reason"] == "max_steps"
    assert [rec["reward"] for rec in recs] == pytest.approx([float(step[1]) for step in steps], abs=1e-12)
    assert recs[0]["episode_reward"] == pytest.approx(steps[-1][4]["episode"]["R"], abs=1e-12)


def test_tokenized_records_match_the_chat_template() -> None:
    """With a tokenizer, prompt ids are the templated prompt and the mask covers every response id."""
    from agemem_gym.trainers.models import tiny_tokenizer

    tok = tiny_tokenizer()
    recs = oracle_records(tokenizer=tok)
    for r in recs[:5]:
        validate_record(r)
        text = tok.apply_chat_template(r["messages"], tokenize=False, add_generation_prompt=True)
        assert tok.decode(r["prompt_ids"]) == text
        assert r["response_ids"][-1] == tok.eos_token_id
        assert tok.decode(r["response_ids"][:-1]) == r["response"]
        assert r["loss_mask"] == [1] * len(r["response_ids"])
    prompt, response = tokenize_step(tok, recs[0]["messages"], "hi", append_eos=False)
    assert prompt == recs[0]["prompt_ids"] and response == list(b"hi")


def test_mask_invalid_zeroes_rejected_turns() -> None:
    """With mask_invalid, a malformed turn's loss mask is all zeros and a valid one all ones."""
    from agemem_gym.trainers.models import tiny_tokenizer

    env = make_env()
    policy = RandomPolicy(seed=0, malformed=0.5)
    recs = list(collect_records(env, policy, TASKS, group_size=1, tokenizer=tiny_tokenizer(), mask_invalid=True))
    bad = [r for r in recs if r["action_error"] is not None]
    good = [r for r in recs if r["action_error"] is None]
    assert bad and good
    assert all(set(r["loss_mask"]) == {0} for r in bad) and all(set(r["loss_mask"]) == {1} for r in good)


def test_jsonl_round_trip(tmp_path: Path) -> None:
    """Records written as JSON Lines read back equal, and the file is one JSON object per line."""
    from agemem_gym.trainers.models import tiny_tokenizer

    recs = oracle_records(tokenizer=tiny_tokenizer())
    path = tmp_path / "steps.jsonl"
    assert write_records(recs, path) == len(recs)
    assert list(read_records(path)) == recs
    assert len(path.read_text().splitlines()) == len(recs)
    assert not (tmp_path / "steps.jsonl.tmp").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema_version": 0}, "schema_version 1"),
        ({"reward": "x"}, "'reward' must be float or int"),
        ({"is_last": 1}, "'is_last' must be bool"),
        ({"step": True}, "'step' must be int, got a bool"),
        ({"messages": [{"role": "user"}]}, "messages[0]"),
        ({"reward": 123.0}, "sum to"),
        ({"stage": 4}, "'stage' 1, 2 or 3"),
        ({"prompt_ids": [1]}, "token fields come together"),
        ({"prompt_ids": [1], "response_ids": [2, 3], "loss_mask": [1]}, "one value per response id"),
        ({"prompt_ids": [1], "response_ids": [2], "loss_mask": [2]}, "0 or 1"),
        ({"prompt_ids": ["a"], "response_ids": [2], "loss_mask": [1]}, "list of ints"),
    ],
)
def test_validation_names_the_problem(change: dict[str, Any], message: str) -> None:
    """validate_record raises DataError saying which rule a broken record breaks."""
    env = make_env()
    rec = next(collect_records(env, NoMemoryPolicy(), TASKS[:1], group_size=1))
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_record({**rec, **change})
    missing = dict(rec)
    del missing["response"]
    with pytest.raises(DataError, match="missing the field 'response'"):
        validate_record(missing)


def test_read_names_the_bad_line(tmp_path: Path) -> None:
    """A corrupt or invalid line is reported with its line number."""
    env = make_env()
    rec = next(collect_records(env, NoMemoryPolicy(), TASKS[:1], group_size=1))
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(rec) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: not JSON"):
        list(read_records(path))
    path.write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "schema_version": 9}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: expects step records"):
        list(read_records(path))
    with pytest.raises(DataError):
        write_records([rec, {**rec, "stage": 0}], tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_bad_arguments_raise() -> None:
    """Nonsense group sizes, caps and policies are programmer errors."""
    env = make_env()
    with pytest.raises(ConfigError, match="'group_size' must be a positive int, got 0"):
        list(collect_records(env, NoMemoryPolicy(), TASKS, group_size=0))
    with pytest.raises(ConfigError, match="'policy' must have"):
        list(collect_records(env, 42, TASKS))  # type: ignore[arg-type]


class _ScriptedPolicy:
    """Writes one fixed turn, again and again."""

    def __init__(self, text: str) -> None:
        self.text = text

    def reset(self, info: Any) -> None:
        pass

    def act(self, observation: str, info: Any) -> str:
        return self.text


def test_responses_with_lone_surrogates_tokenise_write_and_read_back(tmp_path: Path) -> None:
    """A response holding a lone surrogate (rejected by the env) tokenises, is written as valid UTF-8 and reads
    back verbatim."""
    from agemem_gym.trainers.models import tiny_tokenizer

    text = "<answer>bad \ud800 answer</answer>"
    recs = list(collect_records(make_env(), _ScriptedPolicy(text), TASKS[:1], group_size=1, tokenizer=tiny_tokenizer()))
    assert recs and all(r["response"] == text and r["action_error"] == "invalid_unicode" for r in recs)
    path = tmp_path / "recs.jsonl"
    assert write_records(recs, path) == len(recs)
    path.read_bytes().decode("utf-8")
    assert [r["response"] for r in read_records(path)] == [text] * len(recs)
    tokenize_step(tiny_tokenizer(), recs[0]["messages"], text)
