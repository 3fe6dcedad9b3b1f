"""Step records: THE training format, one plain dict per agent turn, that every trainer and adapter reads and writes.

A record holds everything a step-wise learner needs about one turn: the prompt the agent saw (the env's
``info["messages"]`` *after* its own SUMMARY/FILTER edits, and ``info["tools"]``), the text it answered, the
step's shaped reward and its components, and the episode's terminal reward R(τ), written into every step of a
trajectory once the trajectory has ended. Given a tokenizer, the record also carries the exact prompt ids (chat
template applied, generation prompt added), the response ids and a loss mask. Records are JSON-safe and are
written as JSON Lines (:func:`write_records`, :func:`read_records`).

Who makes them: :func:`collect_records` (any policy, K trajectories per task), the SFT warm start
(``agemem_gym.trainers.sft``, which trains on their ``messages`` and ``response``), and
:func:`agemem_gym.evaluation.recorder.export_sft`, which replays an episode recording into them.

**Not to be confused with an episode recording** (:mod:`agemem_gym.evaluation.recorder`, format ``"agemem-episodes"``): that
is an action log for exact replay (a header with the env id, kwargs and reset seed, then each turn's action,
parsed calls, tool results and observation hash, no prompts), written line by line as the episode runs. A step
record is a training sample that holds its whole prompt. A recording becomes step records by replaying it
(``export_sft``); step records cannot be replayed (they keep no reset seed or env kwargs).

Schema (version :data:`SCHEMA_VERSION`); fields marked * are present only when a tokenizer was given:

| field | type | meaning |
|---|---|---|
| ``schema_version`` | int | :data:`SCHEMA_VERSION` |
| ``env_id`` | str or null | the Gymnasium id the records came from |
| ``task_id`` | str | the task (``reset(options={"task_id": ...})``) |
| ``group_id`` | str | shared by the K trajectories that started from the same task and material |
| ``trajectory_id`` | str | unique within a collection: ``{group_id}/k{k}`` |
| ``material_seed`` | int | ``reset(options={"material_seed": ...})`` of the trajectory |
| ``step`` | int | 0-based index of the turn in its trajectory |
| ``is_last`` | bool | true on the trajectory's final turn |
| ``stage`` | int | 1, 2 or 3: the stage the turn was taken in |
| ``messages`` | list of {role, content} | the prompt: the context the agent saw before this turn |
| ``tools`` | list of dict | the tool schemas (OpenAI function format) |
| ``response`` | str | the agent's text for this turn |
| ``reward`` | float | the step's shaped reward (potential increment plus task term and penalties) |
| ``reward_components`` | dict of float | ``info["reward_components"]``; they sum to ``reward`` |
| ``return_to_go`` | float | sum of ``reward`` from this turn to the end of the trajectory |
| ``episode_reward`` | float | R(τ), the same on every turn of the trajectory (the sum of its step rewards) |
| ``action_error`` | str or null | ``info["action_error"]`` of this turn |
| ``terminated`` / ``truncated`` | bool | as returned by ``step`` for this turn |
| ``prompt_ids`` * | list of int | chat template over ``messages`` with the generation prompt, tokenised |
| ``response_ids`` * | list of int | ``response`` tokenised (plus the end-of-turn token when ``append_eos``) |
| ``loss_mask`` * | list of int | one 0/1 per ``response_ids`` token: 1 where a learner should train |

A trajectory that its collector stops before the env ends it (:func:`collect_records`' ``max_turns``, the end of a
recording) is ended through the env (``env.unwrapped.truncate(reason=...)``), as the trainer does: the last record
has ``truncated`` true and its ``reward`` and ``reward_components`` include that closing step's (P_rounds,
w_task · P_no-answer), as a turn at which the env truncates carries them, so ``episode_reward`` is the env's R(τ)
and still the sum of the rewards.

Files of the earlier SFT pair format (``{"messages", "response"}`` lines, no ``schema_version``) are refused with a
:class:`~agemem_gym.errors.DataError` that names the fix: a pair holds no reward, stage or ids, and inventing them
would make a file that passes for RL data. Collect the records again (``python -m agemem_gym.trainers.sft --policy
NAME --save-data FILE``) or export them from the episode recording they came from (``export_sft``).

>>> import gymnasium as gym, agemem_gym
>>> from agemem_gym.evaluation.agents import NoMemoryPolicy
>>> env = gym.make("AgeMem-Synthetic-v0", n_tasks=4)
>>> recs = list(collect_records(env, NoMemoryPolicy(), ["syn-medium-s0-000001"], group_size=2))
>>> validate_record(recs[0]); recs[0]["schema_version"], recs[-1]["is_last"], recs[0]["trajectory_id"]
(1, True, 'g0-syn-medium-s0-000001/k0')
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym

from agemem_gym._validate import check
from agemem_gym.chat import encode_chat
from agemem_gym.errors import ConfigError, DataError
from agemem_gym.jsonl import read_jsonl, write_jsonl
from agemem_gym.protocol import display_text

__all__ = [
    "RECORD_FIELDS",
    "SCHEMA_VERSION",
    "TOKEN_FIELDS",
    "Act",
    "AgentPolicy",
    "collect_records",
    "read_records",
    "tokenize_step",
    "trajectory_records",
    "validate_record",
    "write_records",
]

SCHEMA_VERSION = 1

# field -> accepted Python types (after a JSON round trip). bool is checked before int (bool is an int subclass).
RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "schema_version": (int,),
    "env_id": (str, type(None)),
    "task_id": (str,),
    "group_id": (str,),
    "trajectory_id": (str,),
    "material_seed": (int,),
    "step": (int,),
    "is_last": (bool,),
    "stage": (int,),
    "messages": (list,),
    "tools": (list,),
    "response": (str,),
    "reward": (float, int),
    "reward_components": (dict,),
    "return_to_go": (float, int),
    "episode_reward": (float, int),
    "action_error": (str, type(None)),
    "terminated": (bool,),
    "truncated": (bool,),
}
TOKEN_FIELDS: tuple[str, ...] = ("prompt_ids", "response_ids", "loss_mask")

Act = Callable[[str, Mapping[str, Any]], str | None]
"""``act(observation, info) -> text``: the agent's next turn, or None to stop (the env then ends the episode)."""


@runtime_checkable
class AgentPolicy(Protocol):
    """A policy in the scripted agents' shape (:mod:`agemem_gym.evaluation.agents`)."""

    def reset(self, info: Mapping[str, Any]) -> None: ...

    def act(self, observation: str, info: Mapping[str, Any]) -> str: ...


def tokenize_step(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    response: str,
    *,
    tools: list[dict[str, Any]] | None = None,
    append_eos: bool = True,
    max_prompt_tokens: int | None = None,
) -> tuple[list[int], list[int]]:
    """Prompt ids (chat template with the generation prompt) and response ids of one turn.

    The prompt is :func:`~agemem_gym.chat.encode_chat`'s, as the trainer's rollouts build it (``max_prompt_tokens``
    keeps its last tokens). The response is tokenised on its own and, with ``append_eos``, closed with the
    tokenizer's EOS token (the end-of-turn token of ChatML models), which is what a model must learn to emit to end
    its turn.
    """
    prompt_ids, _ = encode_chat(tokenizer, messages, tools=tools, max_prompt_tokens=max_prompt_tokens)
    # No tokenizer takes lone surrogates; a response holding them (the env rejects it as invalid_unicode) is
    # tokenised with U+FFFD in their place, while the record's "response" keeps the text verbatim.
    response_ids: list[int] = list(tokenizer(display_text(response), add_special_tokens=False).input_ids)
    if append_eos and tokenizer.eos_token_id is not None:
        response_ids.append(int(tokenizer.eos_token_id))
    return prompt_ids, response_ids


def collect_records(
    env: gym.Env[str, str],
    policy: AgentPolicy | Callable[[list[dict[str, Any]]], str],
    task_ids: Iterable[str],
    *,
    group_size: int = 4,
    seed: int = 0,
    material_seed: int = 0,
    tokenizer: Any = None,
    pass_tools: bool = False,
    append_eos: bool = True,
    mask_invalid: bool = False,
    max_turns: int = 256,
) -> Iterator[dict[str, Any]]:
    """Play ``group_size`` trajectories per task with ``policy`` and yield one record per agent turn.

    The K trajectories of a task reset with the same ``task_id`` and ``material_seed`` (so they share their start
    exactly) and with seeds ``seed + k``; each trajectory's records are yielded when it ends, with R(τ) filled in.

    Args:
        env: An AgeMem env (wrapped or not).
        policy: An object with ``reset(info)`` / ``act(observation, info)`` (the scripted agents' shape), or a
            callable ``messages -> text``. A privileged oracle is built by the caller: ``OraclePolicy(env.unwrapped)``.
        task_ids: The tasks, one group each.
        group_size: K, trajectories per task.
        seed: Base reset seed; trajectory k of every group resets with ``seed + k``.
        material_seed: Passed to ``reset(options=...)``.
        tokenizer: A transformers tokenizer with a chat template; adds ``prompt_ids``, ``response_ids``,
            ``loss_mask``.
        pass_tools: Also pass the tool schemas to the chat template (the system prompt already lists them).
        append_eos: End each response's ids with the EOS token.
        mask_invalid: Zero the loss mask of turns whose action was rejected (``action_error`` set).
        max_turns: Safety cap on turns per trajectory (the env's own limits end it first); a trajectory it stops is
            ended through the env, as truncated.

    Raises:
        ConfigError: ``group_size`` or ``max_turns`` is not a positive int, or ``policy`` has neither shape.
    """
    check("group_size", group_size, "int", gt=0)
    if not isinstance(policy, AgentPolicy) and not callable(policy):
        raise ConfigError(
            "'policy' must have reset(info) and act(observation, info), or be a callable messages -> text, "
            f"got {type(policy).__name__}"
        )
    for g, task_id in enumerate(task_ids):
        group_id = f"g{g}-{task_id}"
        for k in range(group_size):
            yield from trajectory_records(
                env,
                _actor(policy),
                seed=seed + k,
                options={"task_id": task_id, "material_seed": material_seed},
                group_id=group_id,
                trajectory_id=f"{group_id}/k{k}",
                tokenizer=tokenizer,
                pass_tools=pass_tools,
                append_eos=append_eos,
                mask_invalid=mask_invalid,
                max_turns=max_turns,
            )


def _actor(policy: AgentPolicy | Callable[[list[dict[str, Any]]], str]) -> Act:
    """``policy`` as an :data:`Act`; an :class:`AgentPolicy` is reset on the episode's first observation."""
    if not isinstance(policy, AgentPolicy):
        return lambda obs, info: policy(info["messages"])
    started = False

    def act(obs: str, info: Mapping[str, Any]) -> str:
        nonlocal started
        if not started:
            policy.reset(info)
            started = True
        return policy.act(obs, info)

    return act


def trajectory_records(
    env: gym.Env[str, str],
    act: Act,
    *,
    group_id: str,
    trajectory_id: str,
    seed: int | None = None,
    options: Mapping[str, Any] | None = None,
    tokenizer: Any = None,
    pass_tools: bool = False,
    append_eos: bool = True,
    mask_invalid: bool = False,
    max_turns: int = 256,
    end_reason: str = "turn_cap",
) -> list[dict[str, Any]]:
    """Reset ``env`` once, play ``act`` until the episode ends, and return one record per turn with R(τ) filled in.

    This is the one loop behind :func:`collect_records` (``act`` is a policy) and
    :func:`~agemem_gym.evaluation.recorder.export_sft` (``act`` hands out a recording's actions). When ``act`` returns None,
    or after ``max_turns`` turns, an episode the env has not ended is ended through the env
    (``env.unwrapped.truncate(reason=end_reason)``) and the last turn carries that closing reward; when ``act``
    returns None before the first turn there is no record at all (and nothing is ended).

    Args:
        env: An AgeMem env (wrapped or not).
        act: ``act(observation, info) -> text or None``.
        group_id: The ``group_id`` of every record.
        trajectory_id: The ``trajectory_id`` of every record.
        seed: The reset seed.
        options: The reset options (``task_id``, ``material_seed``, ...).
        tokenizer, pass_tools, append_eos, mask_invalid: As for :func:`collect_records`.
        max_turns: The most turns ``act`` is asked for.
        end_reason: ``truncation_reason`` of an episode this function ends.

    Raises:
        ConfigError: ``max_turns`` is not a positive int, or neither ``options`` nor the reset info names the task.
    """
    check("max_turns", max_turns, "int", gt=0)
    options = dict(options or {})
    obs, info = env.reset(seed=seed, options=options)
    task_id = options.get("task_id", info.get("task_id"))
    if task_id is None:
        raise ConfigError("neither options['task_id'] nor the env's reset info names the task; pass options={...}")
    env_id = env.spec.id if env.spec is not None else None
    records: list[dict[str, Any]] = []
    while True:
        response = act(obs, info) if len(records) < max_turns else None
        if response is None:
            if records:  # the episode is still running (an ended one leaves the loop below)
                info = _end_through_env(env, records[-1], end_reason)
            break
        messages, tools, stage = info["messages"], info["tools"], int(info["stage"])
        obs, reward, terminated, truncated, info = env.step(response)
        rec: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "env_id": env_id,
            "task_id": str(task_id),
            "group_id": group_id,
            "trajectory_id": trajectory_id,
            "material_seed": int(options.get("material_seed", 0)),
            "step": len(records),
            "is_last": False,
            "stage": stage,
            "messages": messages,
            "tools": tools,
            "response": response,
            "reward": float(reward),
            "reward_components": {k: float(v) for k, v in info["reward_components"].items()},
            "return_to_go": 0.0,
            "episode_reward": 0.0,
            "action_error": info["action_error"],
            "terminated": bool(terminated),
            "truncated": bool(truncated),
        }
        if tokenizer is not None:
            prompt_ids, response_ids = tokenize_step(
                tokenizer, messages, response, tools=tools if pass_tools else None, append_eos=append_eos
            )
            keep = 0 if (mask_invalid and rec["action_error"] is not None) else 1
            rec.update(prompt_ids=prompt_ids, response_ids=response_ids, loss_mask=[keep] * len(response_ids))
        records.append(rec)
        if terminated or truncated:
            break
    if not records:
        return records
    records[-1]["is_last"] = True
    # R(τ): the env's episode total (an episode we stop, too, is ended by the env).
    total = float(info["episode"]["R"])
    to_go = 0.0
    for rec in reversed(records):
        to_go += rec["reward"]
        rec["return_to_go"] = to_go
        rec["episode_reward"] = total
    return records


def _end_through_env(env: gym.Env[str, str], last: dict[str, Any], reason: str) -> dict[str, Any]:
    """End the episode through the env and add the closing step to ``last`` (returns the closing info).

    The env applies P_rounds and P_no-answer (paper Eq. 26 and 17); the last turn carries them, as the turn at
    which the env truncates carries those penalties, so the records' rewards still sum to R(τ).
    """
    base: Any = env.unwrapped
    _, closing, terminated, truncated, info = base.truncate(reason=reason)
    last["reward"] += float(closing)
    for k, v in info["reward_components"].items():
        last["reward_components"][k] = last["reward_components"].get(k, 0.0) + float(v)
    last["terminated"], last["truncated"] = bool(terminated), bool(truncated)
    return dict(info)


def validate_record(record: Mapping[str, Any]) -> None:
    """Check one record against the schema; raise :class:`~agemem_gym.errors.DataError` naming the first problem.

    Checks the version, every field's presence and type, the message shape, that the components sum to the
    reward, and (when present) that the three token fields are lists of ints with one mask value per response id.
    A line of the earlier SFT pair format, or of an episode recording, is named as such, with the fix.
    """
    if not isinstance(record, Mapping):
        raise DataError(f"expects a record (a JSON object), got {type(record).__name__}: {record!r:.60}")
    if "schema_version" not in record:
        raise DataError(_unversioned(record))
    version = record["schema_version"]
    if version != SCHEMA_VERSION:
        raise DataError(
            f"expects step records of schema_version {SCHEMA_VERSION}, got {version!r:.40}; re-export them with this "
            "version of agemem_gym.step_records"
        )
    for name, types in RECORD_FIELDS.items():
        if name not in record:
            raise DataError(f"step record is missing the field {name!r}")
        value = record[name]
        if isinstance(value, bool) and bool not in types:
            raise DataError(f"field {name!r} must be {_names(types)}, got a bool")
        if not isinstance(value, types):
            raise DataError(f"field {name!r} must be {_names(types)}, got {type(value).__name__}: {value!r:.60}")
    for i, m in enumerate(record["messages"]):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataError(f"messages[{i}] must be an object with string 'role' and 'content', got {m!r:.80}")
    if record["step"] < 0 or record["stage"] not in (1, 2, 3):
        raise DataError(f"'step' must be >= 0 and 'stage' 1, 2 or 3, got {record['step']!r} and {record['stage']!r}")
    parts = math.fsum(float(v) for v in record["reward_components"].values())
    if not math.isclose(parts, float(record["reward"]), rel_tol=1e-9, abs_tol=1e-9):
        raise DataError(f"'reward_components' sum to {parts!r}, but 'reward' is {record['reward']!r}")
    present = [f for f in TOKEN_FIELDS if f in record]
    if present and len(present) != len(TOKEN_FIELDS):
        raise DataError(f"token fields come together: found {present}, expects all of {list(TOKEN_FIELDS)}")
    if present:
        for name in TOKEN_FIELDS:
            ids = record[name]
            if not isinstance(ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
                raise DataError(f"field {name!r} must be a list of ints")
        if len(record["loss_mask"]) != len(record["response_ids"]):
            raise DataError(
                f"'loss_mask' must have one value per response id: {len(record['loss_mask'])} vs "
                f"{len(record['response_ids'])}"
            )
        if any(v not in (0, 1) for v in record["loss_mask"]):
            raise DataError("'loss_mask' values must be 0 or 1")


def _unversioned(record: Mapping[str, Any]) -> str:
    """Why an object without ``schema_version`` is refused, and what to do about it."""
    message = (
        f"expects a record of the step-record format ('schema_version': {SCHEMA_VERSION}), got an object without one"
    )
    if record.get("type") in ("header", "step", "end"):
        return (
            f"{message}: a line of an episode recording (agemem_gym.evaluation.recorder); turn the recording into step records "
            "with agemem_gym.evaluation.recorder.export_sft(load_episodes(path), out)"
        )
    if "messages" in record and "response" in record:
        return (
            f"{message}: an SFT pair of the earlier format ({{'messages', 'response'}}), which holds no rewards or ids; "
            "collect the records again (python -m agemem_gym.trainers.sft --policy NAME --save-data FILE) or export "
            "them from the episode recording they came from (agemem_gym.evaluation.recorder.export_sft)"
        )
    return f"{message} (keys {sorted(record)[:8]})"


def _names(types: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def write_records(records: Iterable[Mapping[str, Any]], path: str | os.PathLike[str], *, validate: bool = True) -> int:
    """Write records as JSON Lines, atomically (:func:`~agemem_gym.jsonl.write_jsonl`); returns how many.

    Raises:
        DataError: A record fails :func:`validate_record` (with ``validate``); nothing is written then.
        ValueError: A reward is NaN or infinite (JSON has no such numbers).
    """
    return write_jsonl(records, path, check=validate_record if validate else None, allow_nan=False)


def read_records(path: str | os.PathLike[str], *, validate: bool = True) -> Iterator[dict[str, Any]]:
    """Read records written by :func:`write_records`, one at a time.

    Raises:
        DataError: ``path:line: ...``: a line is not JSON or (with ``validate``) not a valid record (the message
            names the field, or says which other format the file is in and how to convert it).
    """
    return read_jsonl(path, check=validate_record if validate else None)
