"""verl: an agent loop that plays AgeMem episodes, shaped like verl's ``AgentLoopBase`` / ``AgentLoopOutput``.

Written against verl's ``verl/experimental/agent_loop/agent_loop.py`` (volcengine/verl, commit 0003ed89; docs:
https://verl.readthedocs.io/en/latest/advance/agent_loop.html). verl itself needs Ray and an inference server
(vLLM or SGLang) and was **not** run here; the loop is tested against a fake async LLM server with verl's
``server_manager.generate`` signature, and :func:`verl_agent_loop_class` wraps it as a real ``AgentLoopBase``
subclass where verl is installed.

verl's contract at that commit:

- an agent loop is built per sample as ``cls(trainer_config, server_manager, tokenizer, processor, **kwargs)``
  (the extra ``kwargs`` come from the agent-loop YAML) and registered by name (``@register("name")``, or an
  ``agent_loop_config_path`` YAML whose entries name ``_target_``); datasets pick it with an ``agent_name`` column;
- ``async run(sampling_params, **kwargs) -> AgentLoopOutput``; ``kwargs`` are the dataset row's fields
  (``raw_prompt``, ``extra_info``, ``index``, ...);
- ``await server_manager.generate(request_id, prompt_ids=..., sampling_params=..., image_data=None)`` returns a
  ``TokenOutput`` with ``token_ids`` and ``log_probs``;
- ``AgentLoopOutput`` fields: ``prompt_ids``, ``response_ids`` (generated tokens and tool/env tokens, in order),
  ``response_mask`` (1 for generated tokens, 0 for tool/env tokens), ``response_logprobs``, ``multi_modal_data``,
  ``reward_score`` (the trajectory's reward, when the loop computes it), ``num_turns`` (user, assistant and tool
  turns), ``metrics`` (``AgentLoopMetrics``: ``generate_sequences`` and ``tool_calls`` seconds) and
  ``extra_fields``.

Mapping: one sample is one AgeMem episode, token-in-token-out: each turn is generated from ``prompt_ids`` +
``response_ids`` so far, its text is the agent's action, and the env's reply (tool results, the user's next
message) is appended as mask-0 tokens rendered with the chat template. ``reward_score`` is R(τ); the per-turn
shaped rewards are ``extra_fields["turn_scores"]`` and sum to it. An episode that ``max_turns`` or
``response_length`` stops is ended through the env (``truncate``, reason ``"turn_cap"`` or ``"response_length"``),
which scores it as a truncated episode; that closing reward is added to the last turn's score, as the env's own
truncation adds its penalties to the step that truncates, and ``extra_fields["finished"]`` is false (the env did
not end it itself). verl trains one growing sequence per sample, so the env's
short-term-memory edits do not change what the model sees; ``extra_fields["env_messages"]`` has the env's final
(edited) context.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import gymnasium as gym

import agemem_gym  # noqa: F401  (registers the env ids)
from agemem_gym.adapters._common import close_episode, since_last_agent_turn
from agemem_gym.chat import encode_chat
from agemem_gym.errors import ConfigError

__all__ = ["AGENT_NAME", "AgeMemAgentLoop", "AgentLoopResult", "verl_agent_loop_class"]

AGENT_NAME = "agemem_agent"

# A fixed conversation used to render the env's messages as a continuation (the "fixed base" trick): render
# base + new, drop the rendering of base. It keeps templates from inserting a default system prompt.
_BASE: list[dict[str, str]] = [
    {"role": "system", "content": "s"},
    {"role": "user", "content": "u"},
    {"role": "assistant", "content": "a"},
]


@dataclass
class AgentLoopResult:
    """The fields of verl's ``AgentLoopOutput``, as plain Python (see the module docstring)."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    response_logprobs: list[float] | None
    reward_score: float
    num_turns: int
    metrics: dict[str, float]
    multi_modal_data: dict[str, Any] | None = None
    extra_fields: dict[str, Any] = field(default_factory=dict)


def _ids(tokenizer: Any, messages: Sequence[Mapping[str, str]], *, generation_prompt: bool) -> list[int]:
    return encode_chat(tokenizer, messages, generation_prompt=generation_prompt)[0]


def _continuation_ids(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> list[int]:
    """Token ids that continue a conversation whose last (generated) turn ended with EOS: the env's messages and
    the next assistant header."""
    base = _ids(tokenizer, _BASE, generation_prompt=False)
    full = _ids(tokenizer, [*_BASE, *messages], generation_prompt=True)
    eos = tokenizer.eos_token_id
    # The generated turn ends at EOS; what the template writes after EOS (e.g. ChatML's "\n") belongs to us.
    cut = len(base) - base[::-1].index(eos) if eos in base else len(base)
    return full[cut:]


class AgeMemAgentLoop:
    """Plays one AgeMem episode per sample through an async LLM server, the way a verl agent loop does.

    Args:
        trainer_config: verl's trainer config wrapper (unused here; kept for verl's constructor signature).
        server_manager: Has ``async generate(request_id, *, prompt_ids, sampling_params, image_data=None)``
            returning an object with ``token_ids`` and ``log_probs``.
        tokenizer: The policy's tokenizer (with a chat template).
        processor: Unused (text only).
        env_id: The Gymnasium id (from the agent-loop YAML).
        env_kwargs: For ``gym.make``.
        max_turns: Cap on agent turns per episode (an episode it stops is ended through the env, as truncated).
        response_length: Cap on ``len(response_ids)`` (verl's ``rollout.response_length``; the same).
    """

    def __init__(
        self,
        trainer_config: Any,
        server_manager: Any,
        tokenizer: Any,
        processor: Any = None,
        *,
        env_id: str = "AgeMem-Synthetic-v0",
        env_kwargs: Mapping[str, Any] | None = None,
        max_turns: int = 64,
        response_length: int = 8192,
        **kwargs: Any,
    ) -> None:
        if max_turns < 1 or response_length < 1:
            raise ConfigError(
                f"'max_turns' and 'response_length' must be >= 1, got {max_turns!r} and {response_length!r}"
            )
        self.config = getattr(trainer_config, "config", trainer_config)
        self.server_manager = server_manager
        self.tokenizer = tokenizer
        self.processor = processor
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.max_turns = max_turns
        self.response_length = response_length

    async def run_episode(self, sampling_params: Mapping[str, Any], **row: Any) -> AgentLoopResult:
        """Play the episode named by the row (``task_id`` at the top level or in ``extra_info``)."""
        extra = row.get("extra_info") or {}
        task_id = row.get("task_id", extra.get("task_id") if isinstance(extra, Mapping) else None)
        if task_id is None:
            raise ConfigError("the dataset row must name the task: 'task_id' or 'extra_info': {'task_id': ...}")
        material_seed = int(row.get("material_seed", extra.get("material_seed", 0)))
        env = gym.make(self.env_id, **self.env_kwargs)
        _, info = env.reset(options={"task_id": task_id, "material_seed": material_seed})
        tok = self.tokenizer
        prompt_ids = _ids(tok, info["messages"], generation_prompt=True)
        response_ids: list[int] = []
        mask: list[int] = []
        logprobs: list[float] = []
        turn_scores: list[float] = []
        timing = {"generate_sequences": 0.0, "tool_calls": 0.0}
        request_id, num_turns, done = uuid4().hex, 1, False
        while not done and len(turn_scores) < self.max_turns and len(response_ids) < self.response_length:
            t0 = time.perf_counter()
            out = await self.server_manager.generate(
                request_id, prompt_ids=prompt_ids + response_ids, sampling_params=dict(sampling_params)
            )
            t1 = time.perf_counter()
            generated = list(out.token_ids)[: self.response_length - len(response_ids)]
            response_ids += generated
            mask += [1] * len(generated)
            got = getattr(out, "log_probs", None)
            logprobs += list(got)[: len(generated)] if got is not None else [0.0] * len(generated)
            _, reward, terminated, truncated, info = env.step(tok.decode(generated, skip_special_tokens=True))
            turn_scores.append(float(reward))
            num_turns += 1
            done = terminated or truncated
            if not done:
                messages = info["messages"]
                new = since_last_agent_turn(messages)
                num_turns += len(new)
                obs = _continuation_ids(tok, new)[: max(0, self.response_length - len(response_ids))]
                response_ids += obs
                mask += [0] * len(obs)
                logprobs += [0.0] * len(obs)
            timing["generate_sequences"] += t1 - t0
            timing["tool_calls"] += time.perf_counter() - t1
        episode: dict[str, Any] | None = info.get("episode")
        finished = episode is not None  # the env ended it: answered, or truncated at its own limits
        if episode is not None:
            reward_score = float(episode["R"])
        else:  # a cap of this loop stopped it: the env ends it, with P_rounds and P_no-answer
            reason = "response_length" if len(response_ids) >= self.response_length else "turn_cap"
            closing = close_episode(env, reason)
            reward_score, episode = closing.R, closing.episode
            turn_scores[-1] += closing.reward  # the turn at which the cap hit carries the truncation, as in the env
        env_messages = info["messages"]
        env.close()
        return AgentLoopResult(
            prompt_ids=prompt_ids,
            response_ids=response_ids,
            response_mask=mask,
            response_logprobs=logprobs,
            reward_score=reward_score,
            num_turns=num_turns,
            metrics=timing,
            extra_fields={
                "turn_scores": turn_scores,
                "episode": episode,
                "task_id": task_id,
                "env_messages": env_messages,
                "finished": finished,
            },
        )

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> Any:
        """verl's entry point; without verl it returns the :class:`AgentLoopResult`."""
        return await self.run_episode(sampling_params, **kwargs)


def verl_agent_loop_class(name: str = AGENT_NAME) -> type:
    """A subclass of verl's ``AgentLoopBase`` running :class:`AgeMemAgentLoop`, registered under ``name``.

    Its ``run`` returns a real ``AgentLoopOutput``. Point verl at it with an agent-loop YAML entry
    (``- name: agemem_agent`` / ``_target_: <module>.<class>`` plus ``env_id``, ``env_kwargs``) or by calling
    this function in the worker process before the dataset's ``agent_name`` column is read.

    Raises:
        ImportError: verl is not installed (it needs Ray and vLLM or SGLang; see verl's install guide).
    """
    try:
        from verl.experimental.agent_loop.agent_loop import (
            AgentLoopBase,
            AgentLoopMetrics,
            AgentLoopOutput,
            register,
        )
    except ImportError as err:
        raise ImportError(
            "verl_agent_loop_class needs verl (with Ray and vLLM or SGLang); install verl following "
            f"https://verl.readthedocs.io/en/latest/start/install.html ({err})"
        ) from err

    class VerlAgeMemAgentLoop(AgentLoopBase):  # type: ignore[misc, valid-type]
        """verl agent loop over AgeMem episodes (see :class:`AgeMemAgentLoop`)."""

        def __init__(self, trainer_config: Any, server_manager: Any, tokenizer: Any, processor: Any, **kwargs: Any):
            super().__init__(trainer_config, server_manager, tokenizer, processor, **kwargs)
            rollout = self.config.actor_rollout_ref.rollout
            kwargs.setdefault("response_length", int(rollout.response_length))
            self._loop = AgeMemAgentLoop(trainer_config, server_manager, tokenizer, processor, **kwargs)

        async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> Any:
            res = await self._loop.run_episode(sampling_params, **kwargs)
            return AgentLoopOutput(
                prompt_ids=res.prompt_ids,
                response_ids=res.response_ids,
                response_mask=res.response_mask,
                response_logprobs=res.response_logprobs,
                reward_score=res.reward_score,
                num_turns=res.num_turns,
                metrics=AgentLoopMetrics(**res.metrics),
                extra_fields=res.extra_fields,
            )

    return register(name)(VerlAgeMemAgentLoop)  # type: ignore[no-any-return]
