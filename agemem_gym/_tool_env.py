"""What every env with the six memory tools shares: the settings, the store and context, a tool turn, snapshots.

:class:`~agemem_gym.env.AgeMemEnv` (three-stage episodes) and :class:`~agemem_gym.textenv.TextGameEnv` (a text
game) differ in what a user message is and in how a turn is priced; everything else is the same machinery, and it
lives here once: the config dataclasses built from mappings (:func:`config`), the long-term store and the
context with its token counter, summariser and similarity, the agent's text as the context shows it, one tool
turn (execute the calls, then append the turn and its results), and the deep snapshots of ``get_state``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any, Generic, TypeVar

import gymnasium as gym

from agemem_gym.context import Context, hybrid_similarity, make_token_counter
from agemem_gym.context.summarizers import Summarizer, make_summarizer
from agemem_gym.errors import ConfigError
from agemem_gym.memory import MemoryStore, StoreConfig
from agemem_gym.memory.embedders import Embedder, make_embedder
from agemem_gym.prompts import PromptStyle
from agemem_gym.protocol import ProtocolConfig, display_text
from agemem_gym.rewards import PenaltyConfig
from agemem_gym.spaces import UnicodeText
from agemem_gym.tools import ToolResult, ToolRuntime, ToolSettings, execute, render_results, tool_schemas

__all__: list[str] = []  # private: the envs' shared base

STATE_VERSION = 1

EpisodeT = TypeVar("EpisodeT")


def config(cls: Any, spec: Any, name: str) -> Any:
    """A frozen config dataclass from None (defaults), an instance, or a mapping of its fields."""
    if spec is None:
        return cls()
    if isinstance(spec, cls):
        return spec
    if isinstance(spec, Mapping):
        known = {f.name for f in fields(cls)}
        unknown = set(spec) - known
        if unknown:
            raise ConfigError(f"{name!r}: unknown field(s) {sorted(unknown)}; the fields are {sorted(known)}")
        # Configs with nested configs (StoreConfig.dedup) build those from mappings too, so JSON kwargs work.
        return cls.from_dict(spec) if hasattr(cls, "from_dict") else cls(**spec)
    raise ConfigError(f"{name!r} must be None, a {cls.__name__} or a mapping of its fields, got {spec!r}")


class MemoryToolsEnv(gym.Env[str, str], Generic[EpisodeT]):
    """The shared base of the envs whose agent has the six memory tools (private; see the module docstring)."""

    metadata = {"render_modes": ["ansi"], "render_fps": 1}  # noqa: RUF012  (Gymnasium's convention)

    _ep: EpisodeT | None
    context: Context

    def _set_up(
        self,
        *,
        embedder: str | Embedder | Callable[[list[str]], Any],
        penalties: PenaltyConfig | Mapping[str, float] | None,
        tools: ToolSettings | Mapping[str, Any] | None,
        protocol: ProtocolConfig | Mapping[str, Any] | None,
        store: StoreConfig | Mapping[str, Any] | None,
        prompt_style: PromptStyle,
        tokenizer: Any,
        summarizer: str | Summarizer | None,
        render_mode: str | None,
    ) -> None:
        """Validate and build what both envs hold (the subclass then makes its first context)."""
        if prompt_style not in ("paper", "compact"):
            raise ConfigError(f"'prompt_style' must be 'paper' or 'compact', got {prompt_style!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"'render_mode' must be None or one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.embedder = make_embedder(embedder)
        self.penalties: PenaltyConfig = config(PenaltyConfig, penalties, "penalties")
        self.tool_settings: ToolSettings = config(ToolSettings, tools, "tools")
        self.protocol: ProtocolConfig = config(ProtocolConfig, protocol, "protocol")
        self.store_config: StoreConfig = config(StoreConfig, store, "store")
        self.prompt_style: PromptStyle = prompt_style
        self.render_mode = render_mode
        self._token_counter = make_token_counter(tokenizer)
        self._summarizer = make_summarizer(summarizer)
        self._similarity = hybrid_similarity(self.embedder)
        self._tools = tool_schemas()
        self._tools_json = json.dumps(self._tools)  # info["tools"] is decoded from this: 5x cheaper than deepcopy
        self.action_space = UnicodeText(max_length=self.protocol.max_action_chars)
        self.observation_space = UnicodeText(max_length=10_000_000)
        self.store = MemoryStore(self.embedder, config=self.store_config)
        self._ep = None

    def _context_with(self, prompt: str) -> Context:
        """A fresh context that starts with the system prompt ``prompt``."""
        return Context(
            prompt, token_counter=self._token_counter, summarizer=self._summarizer, similarity=self._similarity
        )

    def _require(self) -> EpisodeT:
        if self._ep is None:
            raise gym.error.ResetNeeded("call reset() before step(), get_state() or render()")
        return self._ep

    def _shown(self, action: str) -> str:
        """The agent's text as the context keeps it: valid UTF-8 (lone surrogates, rejected as invalid_unicode,
        would break it downstream) and at most ``max_action_chars`` long."""
        shown = display_text(action)
        if len(shown) > self.protocol.max_action_chars:
            shown = shown[: self.protocol.max_action_chars] + " …[truncated]"
        return shown

    def _tool_turn(self, calls: Sequence[Any], shown: str, *, step: int, stage: int) -> list[ToolResult]:
        """Run one turn's tool calls on the store and the context, then append the turn and its results."""
        runtime = ToolRuntime(self.store, self.context, self.tool_settings, step=step, stage=stage)
        results = [execute(call, runtime) for call in calls]
        # The action and its results follow the edits, so a summary never swallows the call that made it.
        self.context.append("assistant", shown, kind="action", stage=stage)
        self.context.append("tool", render_results(results), kind="tool_result", stage=stage)
        return results

    # ---- snapshots ----
    def _snapshot(self, **extra: Any) -> dict[str, Any]:
        """The deep, picklable snapshot of ``get_state``: the episode, context, store, RNG and ``extra``."""
        return {
            "version": STATE_VERSION,
            "episode": copy.deepcopy(self._require()),
            "context": self.context.snapshot(),
            "store": self.store.snapshot(),
            "np_random": copy.deepcopy(self.np_random.bit_generator.state),
            **extra,
        }

    def _restore(self, state: Mapping[str, Any], new_context: Callable[[EpisodeT], Context]) -> EpisodeT:
        """Check and restore a :meth:`_snapshot` (episode, store, context from ``new_context(episode)``, RNG).

        Raises:
            ConfigError: The snapshot is not one, or is of another version.
        """
        if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
            raise ConfigError(
                f"set_state expects a snapshot from get_state() (version {STATE_VERSION}), "
                f"got {type(state).__name__} with version {getattr(state, 'get', lambda _k: None)('version')!r}"
            )
        ep: EpisodeT = copy.deepcopy(state["episode"])
        store = MemoryStore(self.embedder, config=self.store_config)
        store.restore(state["store"])
        context = new_context(ep)
        context.restore(state["context"])
        self.np_random.bit_generator.state = copy.deepcopy(state["np_random"])
        self._ep, self.store, self.context = ep, store, context
        return ep

    # ---- rendering ----
    def render(self) -> str | None:
        """With ``render_mode="ansi"``, the rendered context (the observation); otherwise None."""
        if self.render_mode == "ansi":
            self._require()
            return self.context.render()
        return None
