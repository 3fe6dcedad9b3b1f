"""TRL: the AgeMem env as an ``environment_factory`` for ``trl.GRPOTrainer`` (written against TRL 1.16.0).

TRL's contract (``GRPOTrainer.__init__`` docstring and ``_tool_call_loop`` in TRL 1.16.0; docs:
https://huggingface.co/docs/trl/main/en/grpo_trainer, section "Training with environments"):

- ``environment_factory`` is a zero-argument callable returning an environment object. TRL builds a pool of
  them and reuses each one across batches, calling ``reset(**row)`` before every rollout with the dataset row's
  columns as keyword arguments (so the K = ``num_generations`` rollouts of a prompt get the same row).
- ``reset`` returns ``None`` or a string that TRL appends to the prompt's last user message.
- Every public method other than ``reset`` and ``get_reward`` is a tool. TRL renders its schema from the type hints
  and the Google-style docstring (an ``Args:`` section naming every parameter), calls it with the parsed JSON
  arguments, and sends ``str(result)`` back as a ``tool`` message. An exception becomes
  ``{"error": str(exception)}`` and counts in ``tools/failure_frequency``.
- ``get_reward()`` (no arguments, a float) is called once per finished rollout; TRL adds it as a reward function
  named after the class, with weight 1, and normalises it within each prompt's group (GRPO).

How an AgeMem episode maps onto that loop. TRL's rollout is one assistant completion interleaved with tool results:
generation stops at the first assistant message without a tool call. So every memory tool call is one env step
(the call in the protocol's text form), and replying to the user is the ``answer`` tool: it closes the current user
turn, and its result is the user's next message (the next paragraph of stage 1 or 2, or the stage-3 question).
Answering the question ends the episode; ``get_reward`` then returns the env's R(τ). A rollout that stops early
(no tool call, or TRL's ``max_completion_length`` / ``max_tool_calling_iterations``) is ended by ``get_reward``
through the env (``truncate(reason="rollout_stopped")``), which scores it as it scores a truncated episode: R so far
+ P_rounds + w_task · P_no-answer; the ``episode`` property then holds that truncated episode's summary.

What TRL cannot express: its conversation only grows (tool results are appended token ids), so the env's
short-term-memory edits (the stage-2 context reset, ``Summary_context``, ``Filter_context``) change the env's
context and its rewards, but not what the model sees. For training on the edited context use the step-wise
trainer (``agemem_gym.trainers.grpo``) or :mod:`agemem_gym.adapters.records`.

>>> env = AgeMemTRLEnv(env_kwargs={"n_tasks": 4})
>>> first = env.reset(task_id="syn-medium-s0-000001")
>>> env.Add_memory(content="The Orvel Bridge opened in 1841.")
'[Add_memory] added m_0001'
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

import gymnasium as gym

import agemem_gym  # noqa: F401  (registers the env ids)
from agemem_gym.adapters._common import close_episode, starts
from agemem_gym.errors import ConfigError

__all__ = [
    "GAME_SYSTEM_PROMPT",
    "TOOL_SYSTEM_PROMPT",
    "AgeMemTRLEnv",
    "AgeMemTRLGameEnv",
    "build_dataset",
    "environment_factory",
    "tool_calling_tokenizer",
]

_EXTRA = "pip install 'agemem-gym[trl]'"

TOOL_SYSTEM_PROMPT = """You are a helpful assistant that manages its own memory with tools.

You have two memories:
- Long-term memory: a store that lasts for the whole session. Write it with Add_memory, Update_memory and Delete_memory; read it with Retrieve_memory, which returns the matching entries with their ids.
- Short-term memory: this conversation, limited to {budget} tokens. Shorten it with Summary_context or Filter_context.

The user first shares material, then talks about other things, then asks a question. Store what may matter later, and retrieve before you answer a question that depends on earlier information.

Call the tools with function calls. To reply to the user, call the answer tool: its result is the user's next message. When the user asks a question, answer with a short phrase (a name, a date, a number, yes or no) through the answer tool; after that, the conversation is over."""


GAME_SYSTEM_PROMPT = """You are playing an interactive text game, and you manage your own memory with tools.

You have two memories:
- Long-term memory: a store that can last across games. Write it with Add_memory, Update_memory and Delete_memory; read it with Retrieve_memory, which returns the matching entries with their ids.
- Short-term memory: this conversation, limited to {budget} tokens. Shorten it with Summary_context or Filter_context.

Call the tools with function calls. To act in the game, call the act tool with one command: its result is what the game says next. Memory tools do not move the game.

{instructions}"""


def _is_text_game(env: Any) -> bool:
    from agemem_gym.textenv import TextGameEnv

    return isinstance(env.unwrapped, TextGameEnv)


def _none_free(arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in arguments.items() if v is not None}


class _TRLEnvBase:
    """What both TRL envs share (private: TRL lists every public function as a tool, so each subclass adds its
    own action tool): ``reset``, ``get_reward``, the six memory tools, the stepping.

    Args:
        env_id: The Gymnasium id to make (``AgeMem-Synthetic-v0``, ``AgeMem-HotpotQA-v0``, ...).
        env_kwargs: Keyword arguments for ``gym.make`` (e.g. ``data_path``, ``episode``).

    Only the tools, ``reset`` and ``get_reward`` are public functions: TRL exposes every other public method to the
    model as a tool. The last episode summary is readable as the ``episode`` property.
    """

    _speaker = "The user"  # who speaks in the env's user messages

    def __init__(self, env_id: str = "AgeMem-Synthetic-v0", env_kwargs: Mapping[str, Any] | None = None) -> None:
        self._env = gym.make(env_id, **dict(env_kwargs or {}))
        self._info: dict[str, Any] = {}
        self._done = False
        self._reward_sum = 0.0
        self._started = False

    # ---- TRL's interface ----
    def reset(self, **row: Any) -> str | None:
        """Start the episode named by the dataset row (``task_id``; optional ``material_seed`` and ``seed``).

        Returns ``None`` when the row's prompt already ends with the episode's first user message (rows from
        :func:`build_dataset`), else that message, which TRL appends to the prompt's last user message.
        """
        if "task_id" not in row:
            raise ConfigError(
                f"the dataset row must have a 'task_id' column (build it with build_dataset), got columns {sorted(row)}"
            )
        options: dict[str, Any] = {"task_id": row["task_id"]}
        if not _is_text_game(self._env):  # a text game has no material; its task id is the whole choice
            options["material_seed"] = int(row.get("material_seed") or 0)
        _, self._info = self._env.reset(seed=row.get("seed"), options=options)
        self._done, self._reward_sum, self._started = False, 0.0, True
        first = self._info["messages"][-1]["content"]
        prompt = row.get("prompt")
        if isinstance(prompt, list) and prompt and prompt[-1].get("content") == first:
            return None
        if prompt:
            warnings.warn(
                "the row's prompt does not end with this episode's first user message (was the dataset built with "
                "other env_kwargs?); TRL appends the episode's message to the prompt",
                stacklevel=2,
            )
        return first

    def get_reward(self) -> float:
        """R(τ) of the episode. TRL asks once its rollout is over, so an episode still running then is ended through
        the env (``truncate``), which scores it as a truncated episode; asking again returns the same R."""
        if not self._started:
            raise RuntimeError("get_reward() before reset(): TRL resets every environment before its rollout")
        episode = self._info.get("episode")
        if episode is not None:  # the env ended it (answered, or truncated at its limits), or an earlier call did
            return float(episode["R"])
        closing = close_episode(self._env, "rollout_stopped")
        self._reward_sum += closing.reward
        self._done = True
        if closing.episode is not None:
            self._info = {**self._info, "episode": closing.episode, "truncation_reason": "rollout_stopped"}
        return closing.R

    @property
    def episode(self) -> dict[str, Any] | None:
        """The env's ``info["episode"]`` once the episode has ended, else ``None``."""
        return self._info.get("episode")

    # ---- stepping ----
    def _step(self, action: str) -> str:
        if not self._started:
            raise RuntimeError("call reset() before calling tools")
        if self._done:
            raise RuntimeError("the conversation is over; reply without calling tools")
        _, reward, terminated, truncated, info = self._env.step(action)
        self._info, self._reward_sum = info, self._reward_sum + float(reward)
        self._done = terminated or truncated
        messages = info["messages"]
        if truncated and info.get("truncation_reason") != "game_truncated":
            raise RuntimeError(
                f"the conversation was cut off ({info.get('truncation_reason')}): too many tool calls without "
                f"{self._progress_verb}"
            )
        if info["action_error"] is not None:
            # The env has recorded the mistake (a tool message and a format penalty); TRL shows the model the text.
            raise ValueError(messages[-1]["content"])
        last = messages[-1]
        if terminated or truncated:  # truncated here: the game's own step limit ended a valid action
            return self._closing(last, truncated)
        if last["role"] == "user":  # an answer closed the turn: the user's next message
            return f"{self._speaker} says:\n{last['content']}"
        return str(last["content"])

    _progress_verb = "answering the user"

    def _closing(self, last: Mapping[str, Any], truncated: bool) -> str:
        """The tool result of the step that ended the episode."""
        return "Your answer was recorded; the conversation is over."

    def _call(self, name: str, arguments: Mapping[str, Any]) -> str:
        body = json.dumps([{"name": name, "arguments": _none_free(arguments)}], ensure_ascii=False)
        return self._step(f"<tool_call>{body}</tool_call>")

    # ---- the tools (TRL renders their schemas from these signatures and docstrings) ----
    def Add_memory(self, content: str, metadata: dict | None = None, memory_type: str | None = None) -> str:
        """Store a new piece of information in long-term memory for later turns.

        Args:
            content: The information to store, as a self-contained statement.
            metadata: Optional tags to categorise and filter by, e.g. {"topic": "bridges"}.
            memory_type: Optional kind of memory, e.g. "fact" (the default) or "user_info".

        Returns:
            The new memory's id.
        """
        return self._call("Add_memory", {"content": content, "metadata": metadata, "memory_type": memory_type})

    def Update_memory(self, memory_id: str, content: str, metadata: dict | None = None) -> str:
        """Replace the content of an existing memory; its id stays the same and metadata given here is merged in.

        Args:
            memory_id: The id of the memory, as shown by Add_memory or Retrieve_memory (e.g. "m_0001").
            content: The new content that replaces the old.
            metadata: Optional tags to merge into the memory's metadata.

        Returns:
            Whether the memory was updated.
        """
        return self._call("Update_memory", {"memory_id": memory_id, "content": content, "metadata": metadata})

    def Delete_memory(self, memory_id: str, confirmation: bool) -> str:
        """Remove a memory from long-term memory.

        Args:
            memory_id: The id of the memory to remove.
            confirmation: Must be true to delete; false cancels.

        Returns:
            Whether the memory was deleted.
        """
        return self._call("Delete_memory", {"memory_id": memory_id, "confirmation": confirmation})

    def Retrieve_memory(self, query: str, top_k: int = 3, metadata_filter: dict | None = None) -> str:
        """Search long-term memory for the memories most relevant to a query.

        Args:
            query: What you need to know, in words.
            top_k: How many memories to return.
            metadata_filter: Optional metadata that returned memories must match.

        Returns:
            The matching memories with their ids.
        """
        return self._call("Retrieve_memory", {"query": query, "top_k": top_k, "metadata_filter": metadata_filter})

    def Summary_context(self, span: str, summary: str | None = None) -> str:
        """Replace earlier conversation messages with one short summary to free context space.

        Args:
            span: "all" for every message after the system prompt, or a number N (e.g. "4") for the last N messages.
            summary: Optional summary text, used verbatim; if omitted, an automatic summary is written.

        Returns:
            How many messages were replaced.
        """
        return self._call("Summary_context", {"span": span, "summary": summary})

    def Filter_context(self, criteria: str) -> str:
        """Remove messages that match the criteria from the current conversation.

        Args:
            criteria: What to remove: keywords, phrases or a description of what to drop.

        Returns:
            How many messages were removed.
        """
        return self._call("Filter_context", {"criteria": criteria})


class AgeMemTRLEnv(_TRLEnvBase):
    """One AgeMem episode behind TRL's environment interface: ``reset``, seven tools (the six memory tools and
    ``answer``), ``get_reward``.

    Args:
        env_id: The Gymnasium id to make (``AgeMem-Synthetic-v0``, ``AgeMem-HotpotQA-v0``, ...).
        env_kwargs: Keyword arguments for ``gym.make`` (e.g. ``data_path``, ``episode``).

    Only the tools, ``reset`` and ``get_reward`` are public functions: TRL exposes every other public method to the
    model as a tool. The last episode summary is readable as the ``episode`` property.
    """

    def answer(self, text: str) -> str:
        """Reply to the user; the reply to the final question is your answer.

        Args:
            text: Your reply; for the final question, a short phrase (a name, a date, a number, yes or no).

        Returns:
            The user's next message, or a note that the conversation is over.
        """
        return self._step(f"<answer>{text}</answer>")


class AgeMemTRLGameEnv(_TRLEnvBase):
    """A text game (``AgeMem-TextWorld-v0``, ``AgeMem-BabyAI-v0``, ``AgeMem-ScienceWorld-v0``, ...) behind TRL's
    environment interface: the six memory tools, and ``act`` instead of ``answer``.

    Each tool call is one env step; ``act`` is the game action (the env's ``<answer>``), whose result is the game's
    reply. The episode ends when the game does (won, or its own step limit: the last ``act`` returns the game's
    reply and says the game is over) or at the env's limits (too many memory calls between two actions: the call
    raises, as TRL expects of a failed tool); ``get_reward`` returns its R. Memory tools do not move the game.
    """

    _speaker = "The game"
    _progress_verb = "acting in the game"

    def _closing(self, last: Mapping[str, Any], truncated: bool) -> str:
        # The game's last reply (the win, or the move that used the last step) matters to the model as much as any.
        why = "its step limit was reached" if truncated else "it has ended"
        reply = f"The game says:\n{last['content']}\n" if last["role"] == "user" else ""
        return f"{reply}The game is over ({why}); reply without calling tools."

    def act(self, command: str) -> str:
        """Take one action in the game; the memory tools do not move it.

        Args:
            command: One game command, e.g. "go north", "take old key", "open door to kitchen".

        Returns:
            What the game says next, or a note that the game is over.
        """
        return self._step(f"<answer>{command}</answer>")


def environment_factory(
    env_id: str = "AgeMem-Synthetic-v0", **env_kwargs: Any
) -> Callable[[], AgeMemTRLEnv | AgeMemTRLGameEnv]:
    """A zero-argument factory for ``GRPOTrainer(environment_factory=...)``: every call makes a fresh
    :class:`AgeMemTRLEnv` over ``gym.make(env_id, **env_kwargs)`` (an :class:`AgeMemTRLGameEnv` for a text-game
    id, whose entry point is a :class:`~agemem_gym.textenv.TextGameEnv`)."""
    return partial(AgeMemTRLGameEnv if _is_text_game_id(env_id) else AgeMemTRLEnv, env_id, env_kwargs)


def _is_text_game_id(env_id: str) -> bool:
    import importlib

    from agemem_gym.textenv import TextGameEnv

    entry = gym.spec(env_id).entry_point
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
    return isinstance(entry, type) and issubclass(entry, TextGameEnv)


def build_dataset(
    env_id: str = "AgeMem-Synthetic-v0",
    *,
    task_ids: Iterable[str] | None = None,
    n_tasks: int | None = None,
    material_seed: int = 0,
    system_prompt: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """A ``datasets.Dataset`` of conversational prompts for GRPO, one row per task.

    Columns: ``prompt`` (the system prompt, then the episode's first user message), ``task_id`` and
    ``material_seed`` (which :meth:`AgeMemTRLEnv.reset` reads). The prompt is the env's own first user message, so
    the rollout starts exactly where the env does.

    Args:
        env_id: The Gymnasium id.
        task_ids: The tasks; default the suite's first ``n_tasks`` (all when ``n_tasks`` is None).
        n_tasks: How many of the suite's tasks when ``task_ids`` is None.
        material_seed: Wording and order of each task's material.
        system_prompt: Default :data:`TOOL_SYSTEM_PROMPT`, or :data:`GAME_SYSTEM_PROMPT` with the game's
            instructions for a text-game id (the tools are listed by the chat template).
        env_kwargs: Passed to ``gym.make``.

    Raises:
        ImportError: ``datasets`` is not installed (``pip install 'agemem-gym[trl]'``).
    """
    try:
        from datasets import Dataset
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError(f"build_dataset needs the 'datasets' package: {_EXTRA}") from err
    rows = []
    for start in starts(env_id, task_ids=task_ids, n_tasks=n_tasks, material_seed=material_seed, env_kwargs=env_kwargs):
        default = GAME_SYSTEM_PROMPT if start.instructions is not None else TOOL_SYSTEM_PROMPT
        system = (system_prompt or default).replace("{budget}", str(start.context_budget))
        if start.instructions is not None:
            system = system.replace("{instructions}", start.instructions)
        rows.append(
            {
                "prompt": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": start.messages[-1]["content"]},
                ],
                "task_id": start.task_id,
                "material_seed": start.material_seed,
            }
        )
    return Dataset.from_list(rows)


def tool_calling_tokenizer(tokenizer: Any) -> Any:
    """Give ``tokenizer`` TRL's Qwen2.5 chat template when its own cannot render tool calls; returns it.

    ``GRPOTrainer`` refuses tools with a template that drops tool calls (TRL's ``supports_tool_calling``) and parses
    tool calls only for templates it knows (``add_response_schema``). The Qwen2.5 template uses ChatML's
    ``<|im_start|>``/``<|im_end|>`` markers, so it suits ChatML models such as SmolLM2 and the tiny test Qwen2.

    Raises:
        ImportError: TRL is not installed (``pip install 'agemem-gym[trl]'``).
    """
    try:
        from trl.chat_template_utils import qwen2_5_chat_template, supports_tool_calling
    except ImportError as err:
        raise ImportError(f"tool_calling_tokenizer needs TRL: {_EXTRA}") from err
    if not supports_tool_calling(tokenizer):
        if "<|im_start|>" not in tokenizer.get_vocab():
            warnings.warn(
                "the tokenizer has no <|im_start|> token; the Qwen2.5 (ChatML) template will tokenise its markers "
                "as plain text",
                stacklevel=2,
            )
        tokenizer.chat_template = qwen2_5_chat_template
    return tokenizer
