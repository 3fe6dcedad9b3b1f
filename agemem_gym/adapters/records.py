"""Step records: one plain dict per agent turn, the exchange format every adapter and offline trainer can read.

A record holds everything a step-wise learner needs about one turn: the prompt the agent saw (the env's
``info["messages"]`` *after* its own SUMMARY/FILTER edits, and ``info["tools"]``), the text it answered, the
step's shaped reward and its components, and the episode's terminal reward R(τ), written into every step of a
trajectory once the trajectory has ended. Given a tokenizer, the record also carries the exact prompt ids (chat
template applied, generation prompt added), the response ids and a loss mask. Records are JSON-safe and are
written as JSON Lines.

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

A collection that hits its own turn cap (``max_turns``) ends the episode through the env
(``env.unwrapped.truncate(reason="turn_cap")``), as the trainer does: the last record has ``truncated`` true and
its ``reward`` and ``reward_components`` include that closing step's (P_rounds, w_task · P_no-answer), as a turn at
which the env truncates carries them, so ``episode_reward`` is the env's R(τ) and still the sum of the rewards.

>>> import gymnasium as gym, agemem_gym
>>> from agemem_gym.agents import NoMemoryPolicy
>>> env = gym.make("AgeMem-Synthetic-v0", n_tasks=4)
>>> recs = list(collect_records(env, NoMemoryPolicy(), ["syn-medium-s0-000001"], group_size=2))
>>> validate_record(recs[0]); recs[0]["schema_version"], recs[-1]["is_last"], recs[0]["trajectory_id"]
(1, True, 'g0-syn-medium-s0-000001/k0')
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym

from agemem_gym.chat import chat_ids
from agemem_gym.errors import ConfigError, DataError
from agemem_gym.jsonl import json_line
from agemem_gym.protocol import display_text

__all__ = [
    "RECORD_FIELDS",
    "SCHEMA_VERSION",
    "TOKEN_FIELDS",
    "AgentPolicy",
    "collect_records",
    "read_records",
    "tokenize_step",
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


@runtime_checkable
class AgentPolicy(Protocol):
    """A policy in the scripted agents' shape (:mod:`agemem_gym.agents`)."""

    def reset(self, info: Mapping[str, Any]) -> None: ...

    def act(self, observation: str, info: Mapping[str, Any]) -> str: ...


def tokenize_step(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    response: str,
    *,
    tools: list[dict[str, Any]] | None = None,
    append_eos: bool = True,
) -> tuple[list[int], list[int]]:
    """Prompt ids (chat template with the generation prompt) and response ids of one turn.

    The template writes every special token, so the rendered prompt is tokenised without adding more (no second
    BOS). The response is tokenised on its own and, with ``append_eos``, closed with the tokenizer's EOS token
    (the end-of-turn token of ChatML models), which is what a model must learn to emit to end its turn.
    """
    prompt_ids = chat_ids(tokenizer, messages, tools=tools)
    # No tokenizer takes lone surrogates; a response holding them (the env rejects it as invalid_unicode) is
    # tokenised with U+FFFD in their place, while the record's "response" keeps the text verbatim.
    response_ids: list[int] = list(tokenizer(display_text(response), add_special_tokens=False).input_ids)
    if append_eos and tokenizer.eos_token_id is not None:
        response_ids.append(int(tokenizer.eos_token_id))
    return prompt_ids, response_ids


def _act(policy: AgentPolicy | Callable[[list[dict[str, Any]]], str], obs: str, info: Mapping[str, Any]) -> str:
    if isinstance(policy, AgentPolicy):
        return policy.act(obs, info)
    return policy(info["messages"])


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
    for name, value in (("group_size", group_size), ("max_turns", max_turns)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name!r} must be a positive int, got {value!r}")
    if not isinstance(policy, AgentPolicy) and not callable(policy):
        raise ConfigError(
            "'policy' must have reset(info) and act(observation, info), or be a callable messages -> text, "
            f"got {type(policy).__name__}"
        )
    env_id = env.spec.id if env.spec is not None else None
    for g, task_id in enumerate(task_ids):
        group_id = f"g{g}-{task_id}"
        for k in range(group_size):
            yield from _trajectory(
                env,
                policy,
                task_id,
                seed=seed + k,
                material_seed=material_seed,
                ids=(env_id, group_id, f"{group_id}/k{k}"),
                tokenizer=tokenizer,
                pass_tools=pass_tools,
                append_eos=append_eos,
                mask_invalid=mask_invalid,
                max_turns=max_turns,
            )


def _trajectory(
    env: gym.Env[str, str],
    policy: AgentPolicy | Callable[[list[dict[str, Any]]], str],
    task_id: str,
    *,
    seed: int,
    material_seed: int,
    ids: tuple[str | None, str, str],
    tokenizer: Any,
    pass_tools: bool,
    append_eos: bool,
    mask_invalid: bool,
    max_turns: int,
) -> list[dict[str, Any]]:
    env_id, group_id, trajectory_id = ids
    obs, info = env.reset(seed=seed, options={"task_id": task_id, "material_seed": material_seed})
    if isinstance(policy, AgentPolicy):
        policy.reset(info)
    records: list[dict[str, Any]] = []
    done = False
    while not done:
        response = _act(policy, obs, info)
        messages, tools, stage = info["messages"], info["tools"], int(info["stage"])
        obs, reward, terminated, truncated, info = env.step(response)
        components = {k: float(v) for k, v in info["reward_components"].items()}
        action_error = info["action_error"]
        if not (terminated or truncated) and len(records) + 1 >= max_turns:
            # Our cap: the env ends the episode (P_rounds and P_no-answer, Eq. 26 and 17) and this turn carries
            # the closing reward, as the turn at which the env truncates carries those penalties.
            base: Any = env.unwrapped
            obs, closing, terminated, truncated, info = base.truncate(reason="turn_cap")
            reward = float(reward) + float(closing)
            for k, v in info["reward_components"].items():
                components[k] = components.get(k, 0.0) + float(v)
        done = terminated or truncated
        rec: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "env_id": env_id,
            "task_id": str(info["task_id"]),
            "group_id": group_id,
            "trajectory_id": trajectory_id,
            "material_seed": material_seed,
            "step": len(records),
            "is_last": done,
            "stage": stage,
            "messages": messages,
            "tools": tools,
            "response": response,
            "reward": float(reward),
            "reward_components": components,
            "return_to_go": 0.0,
            "episode_reward": 0.0,
            "action_error": action_error,
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
    # R(τ): the env's episode total (our cap, too, has the env end the episode).
    total = float(info["episode"]["R"])
    to_go = 0.0
    for rec in reversed(records):
        to_go += rec["reward"]
        rec["return_to_go"] = to_go
        rec["episode_reward"] = total
    return records


def validate_record(record: Mapping[str, Any]) -> None:
    """Check one record against the schema; raise :class:`~agemem_gym.errors.DataError` naming the first problem.

    Checks the version, every field's presence and type, the message shape, that the components sum to the
    reward, and (when present) that the three token fields are lists of ints with one mask value per response id.
    """
    if not isinstance(record, Mapping):
        raise DataError(f"a step record must be a JSON object, got {type(record).__name__}")
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DataError(
            f"expects step records of schema_version {SCHEMA_VERSION}, got {version!r}; re-export them with this "
            "version of agemem_gym.adapters.records"
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


def _names(types: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def write_records(records: Iterable[Mapping[str, Any]], path: str | os.PathLike[str], *, validate: bool = True) -> int:
    """Write records as JSON Lines (atomically: a temporary file renamed into place); returns how many.

    Raises:
        DataError: A record fails :func:`validate_record` (with ``validate``); nothing is written then.
    """
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    n = 0
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for rec in records:
                if validate:
                    validate_record(rec)
                f.write(json_line(rec, allow_nan=False))  # valid UTF-8 even for responses with lone surrogates
                n += 1
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def read_records(path: str | os.PathLike[str], *, validate: bool = True) -> Iterator[dict[str, Any]]:
    """Read records written by :func:`write_records`, one at a time.

    Raises:
        DataError: A line is not JSON or (with ``validate``) not a valid record; the message names the line.
    """
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{n}: not JSON ({err.msg}); was the file cut short mid-line?") from None
            if validate:
                try:
                    validate_record(rec)
                except DataError as err:
                    raise DataError(f"{path}:{n}: {err}") from None
            yield rec
