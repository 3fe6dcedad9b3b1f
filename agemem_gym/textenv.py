"""Memory tools for any interactive text environment: the six AgeMem tools around a text game.

:class:`TextGameEnv` gives an agent that plays a text game (anything that implements the small :class:`TextGame`
protocol: ``reset(seed) -> (text, info)``, ``step(text) -> (text, reward, terminated, truncated, info)`` and the
valid actions, if the game has a fixed set) the long-term store and the editable context of
:class:`~agemem_gym.env.AgeMemEnv`, under the same text protocol. A turn is either ``<tool_call>[…]</tool_call>``
(run by the wrapper on its :class:`~agemem_gym.memory.MemoryStore` and :class:`~agemem_gym.context.Context`; the
game does not move) or ``<answer>action</answer>`` (one game step with that action). The same pieces do the work as
in AgeMemEnv: :func:`~agemem_gym.protocol.parse_action`, :func:`~agemem_gym.tools.execute` on a
:class:`~agemem_gym.tools.ToolRuntime`, :func:`~agemem_gym.tools.render_results`, and the system prompt of
:func:`~agemem_gym.prompts.system_prompt` with a section about the game.

With ``lifelong=True`` the long-term store outlives ``reset()``: what the agent stored in one game is there in the
next (the context starts afresh every episode, as a new conversation would).

>>> class Echo:
...     instructions = "Say 'win' to win."
...     def reset(self, *, seed=None): return "Say something.", {}
...     def step(self, action): return f"You said {action}.", float(action == "win"), action == "win", False, {}
...     def valid_actions(self): return None
>>> env = TextGameEnv(Echo())
>>> _ = env.reset(seed=0)
>>> _, r, terminated, _, info = env.step("<think>I win.</think><answer>win</answer>")
>>> r, terminated, info["episode"]["success"]
(1.0, True, True)
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from agemem_gym._tool_env import MemoryToolsEnv, config
from agemem_gym._validate import check, check_field
from agemem_gym.context import Context
from agemem_gym.context.summarizers import Summarizer
from agemem_gym.errors import ConfigError
from agemem_gym.memory import MemoryStore, StoreConfig
from agemem_gym.memory.embedders import Embedder
from agemem_gym.prompts import PromptStyle, system_prompt
from agemem_gym.protocol import ProtocolConfig, parse_action
from agemem_gym.rewards import PenaltyConfig
from agemem_gym.tools import TOOL_NAMES, ToolResult, ToolSettings

__all__ = [
    "GAME_ACTION_ERROR",
    "TextEpisodeConfig",
    "TextEvalResult",
    "TextGame",
    "TextGameEnv",
    "evaluate_text_game",
    "normalize_command",
]

GAME_ACTION_ERROR = "invalid_game_action"
"""``info["action_error"]`` when an ``<answer>`` names no valid action of a game that has a fixed action set."""


@runtime_checkable
class TextGame(Protocol):
    """What :class:`TextGameEnv` needs from an interactive text environment (an adapter over the real one).

    Attributes:
        instructions: What the game is and how to act in it; the env puts it in the system prompt.

    A game may also define ``get_state() -> Any`` and ``set_state(state) -> None`` (a snapshot of the whole game,
    RNG included); :meth:`TextGameEnv.get_state` needs them. Step infos may carry ``"success"`` (bool) and
    ``"progress"`` (a number in [0, 1]); see :class:`TextGameEnv` for what is reported without them.
    """

    instructions: str

    def reset(self, *, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        """Start a game (deterministic for a given seed); returns the first observation and an info dict."""
        ...

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Play one action; returns (observation, reward, terminated, truncated, info) as Gymnasium does."""
        ...

    def valid_actions(self) -> Sequence[str] | None:
        """The actions accepted now (normalised as :func:`normalize_command` does), or None for free-form text."""
        ...


def normalize_command(text: str) -> str:
    """An action as games compare it: lower case, surrounding space and a final full stop dropped, single spaces.

    >>> normalize_command("  Turn   LEFT. ")
    'turn left'
    """
    return re.sub(r"\s+", " ", text.strip().lower()).rstrip(".!").strip()


@dataclass(frozen=True)
class TextEpisodeConfig:
    """Limits of one episode (per-episode overrides go through ``reset(options=...)``).

    Attributes:
        max_tool_rounds: Non-game turns (tool calls, malformed text, invalid game actions) allowed between two game
            steps; one more truncates the episode with P_rounds.
        max_turns: Agent turns allowed per episode (all kinds); reaching it truncates with P_rounds.
        context_budget: The context's token budget (the system prompt states it; P_overflow once past it).
        show_valid_actions: Append the game's valid actions to every observation (for games whose set changes).
    """

    max_tool_rounds: int = 5
    max_turns: int = 500
    context_budget: int = 8192
    show_valid_actions: bool = False

    def __post_init__(self) -> None:
        for name, low in (("max_tool_rounds", 0), ("max_turns", 1), ("context_budget", 1)):
            check_field(self, name, "int", ge=low)
        check_field(self, "show_valid_actions", "bool")

    def override(self, changes: Mapping[str, Any]) -> TextEpisodeConfig:
        """A copy with ``changes`` applied (validated; unknown names raise)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ConfigError(f"unknown episode setting(s) {sorted(unknown)}; the settings are {sorted(known)}")
        return replace(self, **changes)


@dataclass
class _Episode:
    """Everything that changes during an episode except the store, the context and the game."""

    config: TextEpisodeConfig
    game_seed: int
    index: int  # episodes started by this env before this one (lifelong mode: how many games the store has seen)
    turns: int = 0
    game_steps: int = 0
    tool_rounds: int = 0
    score: float = 0.0  # the game's own rewards, summed
    success: bool | None = None  # as the game's info says; None until it says
    progress: float | None = None
    penalty: float = 0.0
    reward_sum: float = 0.0
    overflowed: bool = False
    tokens_peak: int = 0
    done: bool = False
    truncation: str | None = None
    tool_counts: Counter[str] = field(default_factory=Counter)
    error_counts: Counter[str] = field(default_factory=Counter)


_GAME_SECTION = """

## The game
{instructions}

Your <answer> is your next action in the game, written exactly as one of its actions (for example <answer>{example}</answer>). A tool call does not move the game; every <answer> does. The game's reply comes back as the next user message."""


class TextGameEnv(MemoryToolsEnv[_Episode]):
    """A text game played under AgeMem's protocol, with long-term memory and an editable context.

    ## Description
    Each user message is the game's observation; the agent answers with ``<answer>action</answer>`` to act in the
    game, or spends the turn on memory tools (``Add_memory``, ``Update_memory``, ``Delete_memory``,
    ``Retrieve_memory``, ``Summary_context``, ``Filter_context``, as in :class:`~agemem_gym.env.AgeMemEnv`), which
    do not move the game. The context starts as the system prompt (the protocol, the tools and the game's
    instructions) and the first observation; it grows by the agent's turns, the tools' results and the game's
    replies, and the agent edits it with the context tools. With ``lifelong=True`` the long-term store persists
    across ``reset()``, so memories written in one game can be retrieved in the next.

    ## Action Space
    Text (:class:`~agemem_gym.spaces.UnicodeText`): ``<think>…</think>`` then ``<tool_call>[…]</tool_call>`` or
    ``<answer>…</answer>``. Malformed text never raises: it is an error code in ``info["action_error"]``, a tool
    message that says what was wrong, and a format penalty. An ``<answer>`` that is not one of the game's valid
    actions (when the game has a fixed set) is answered the same way, with the code ``"invalid_game_action"`` and
    the list of valid actions, and the game does not step.

    ## Observation Space
    Text: the context rendered as ``[role]``-headed messages. ``info["messages"]`` holds it as OpenAI-style dicts,
    ``info["tools"]`` the tool schemas, ``info["valid_actions"]`` the game's valid actions (or None).

    ## Rewards
    The game's own reward on each game step, plus ``PenaltyConfig.format_error`` per malformed turn, failed tool
    call or invalid game action, ``PenaltyConfig.overflow`` once when the context first passes
    ``context_budget``, and ``PenaltyConfig.rounds`` (P_rounds) when ``max_tool_rounds`` or ``max_turns`` ends
    the episode. ``info["reward_components"]`` splits each step into ``"game"`` and ``"penalty"``. The
    HotpotQA-grounded memory and context terms of AgeMemEnv (storage, maintenance, relevance, preservation) do
    **not** apply here: a game has no gold facts to ground memories against, so memory use pays only through the
    game reward it leads to. The step rewards of an episode sum to ``info["episode"]["R"]``.

    ## Starting State
    ``reset(seed=s)`` starts the game with seed ``s`` (``options={"game_seed": g}`` overrides it; with neither,
    the game seed is drawn from ``np_random``), so the same seed gives the same game and observations. The context
    is fresh; the store is fresh unless ``lifelong``. ``options`` may also override :class:`TextEpisodeConfig`
    fields for one episode.

    ## Episode End
    Terminated when the game terminates. Truncated when the game truncates (``"game_truncated"``, no P_rounds: the
    game's own time limit), or when a game step waits for more than ``max_tool_rounds`` non-game turns
    (``"tool_round_limit"``) or the episode reaches ``max_turns`` turns (``"max_turns"``), both with P_rounds.
    The last step's ``info["episode"]`` holds ``R``, ``success``, ``score`` (the game's rewards summed),
    ``progress``, ``tool_counts``, ``steps`` (agent turns), ``game_steps`` and more. ``success`` is the game's
    ``info["success"]`` when it reports one, else ``score > 0``; ``progress`` is its ``info["progress"]``, else
    1.0 on success and 0.0 otherwise.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``game`` | required | a :class:`TextGame` |
    | ``lifelong`` | ``False`` | keep the long-term store across ``reset()`` |
    | ``embedder`` | ``"hash"`` | ``"hash"``, ``"minilm"`` or a callable ``list[str] -> array`` |
    | ``episode`` | :class:`TextEpisodeConfig` | limits (mapping or instance) |
    | ``penalties`` | :class:`~agemem_gym.rewards.PenaltyConfig` | penalty coefficients |
    | ``tools`` | :class:`~agemem_gym.tools.ToolSettings` | top_k bounds, filter θ, content limits |
    | ``protocol`` | :class:`~agemem_gym.protocol.ProtocolConfig` | action length and calls-per-turn limits |
    | ``store`` | :class:`~agemem_gym.memory.StoreConfig` | hnswlib parameters and near-duplicate policy |
    | ``prompt_style`` | ``"paper"`` | ``"paper"`` (full schemas) or ``"compact"`` |
    | ``tokenizer`` | ``None`` | transformers tokenizer or ``str -> int`` for token accounting |
    | ``summarizer`` | ``"extractive"`` | used by ``Summary_context`` when the agent gives no summary |
    | ``render_mode`` | ``None`` | ``"ansi"`` returns the rendered context |

    ## Version History
    * v0: initial release.
    """

    # The scripted policies of a suite by name, each made from (env, seed): what agemem-eval runs on it.
    SCRIPTED: ClassVar[Mapping[str, Callable[[Any, int], Any]]] = {}

    def scripted_policy(self, name: str, seed: int = 0) -> Any:
        """The suite's scripted policy ``name`` (see ``SCRIPTED``), made for this env.

        Raises:
            ConfigError: The suite has no policy of that name (the message lists those it has).
        """
        if name not in self.SCRIPTED:
            known = ", ".join(sorted(self.SCRIPTED)) or "none"
            raise ConfigError(f"{type(self).__name__} has no scripted policy {name!r}; it has: {known}")
        return self.SCRIPTED[name](self, seed)

    def __init__(
        self,
        game: TextGame,
        *,
        lifelong: bool = False,
        embedder: str | Embedder | Callable[[list[str]], Any] = "hash",
        episode: TextEpisodeConfig | Mapping[str, Any] | None = None,
        penalties: PenaltyConfig | Mapping[str, float] | None = None,
        tools: ToolSettings | Mapping[str, Any] | None = None,
        protocol: ProtocolConfig | Mapping[str, Any] | None = None,
        store: StoreConfig | Mapping[str, Any] | None = None,
        prompt_style: PromptStyle = "paper",
        tokenizer: Any = None,
        summarizer: str | Summarizer | None = None,
        render_mode: str | None = None,
    ) -> None:
        missing = [m for m in ("reset", "step", "valid_actions") if not callable(getattr(game, m, None))]
        if missing or not isinstance(getattr(game, "instructions", None), str):
            raise ConfigError(
                f"'game' must implement the TextGame protocol (reset, step, valid_actions and an 'instructions' "
                f"string); {type(game).__name__} lacks {missing or ['instructions (a str)']}"
            )
        check("lifelong", lifelong, "bool")
        self._set_up(
            embedder=embedder,
            penalties=penalties,
            tools=tools,
            protocol=protocol,
            store=store,
            prompt_style=prompt_style,
            tokenizer=tokenizer,
            summarizer=summarizer,
            render_mode=render_mode,
        )
        self.game = game
        self.lifelong = lifelong
        self.episode_config: TextEpisodeConfig = config(TextEpisodeConfig, episode, "episode")
        self.context = self._new_context(self.episode_config)
        self._episodes_started = 0

    # ---- set-up ----
    def _new_context(self, config: TextEpisodeConfig) -> Context:
        valid = self.game.valid_actions()
        example = valid[0] if valid else "look"
        prompt = system_prompt(self.prompt_style, self._tools, config.context_budget) + _GAME_SECTION.format(
            instructions=self.game.instructions.strip(), example=example
        )
        return self._context_with(prompt)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Start a game. See the class docstring (Starting State) for ``seed`` and ``options``.

        Options:
            game_seed: The game's seed (an int), instead of ``seed``.
            Any :class:`TextEpisodeConfig` field: an override for this episode.
        """
        super().reset(seed=seed)
        opts = dict(options or {})
        game_seed = opts.pop("game_seed", None)
        if game_seed is None:
            game_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        check("options['game_seed']", game_seed, "int")
        config = self.episode_config.override(opts) if opts else self.episode_config
        observation, _ = self.game.reset(seed=game_seed)
        if not self.lifelong:
            self.store = MemoryStore(self.embedder, config=self.store_config)
        self.context = self._new_context(config)
        self._ep = _Episode(config=config, game_seed=game_seed, index=self._episodes_started)
        self._episodes_started += 1
        self._post_observation(observation)
        self._ep.tokens_peak = self.context.tokens
        # The episode's index is in the reset info only: step infos of two same-seed episodes must be equal.
        return self.context.render(), {**self._info(None, [], {}, {}), "episode_index": self._ep.index}

    def _post_observation(self, observation: str) -> None:
        ep = self._require()
        text = str(observation)
        if ep.config.show_valid_actions:
            valid = self.game.valid_actions()
            if valid:
                text += "\nValid actions: " + ", ".join(valid)
        self.context.append("user", text, kind="material", stage=1)

    # ---- stepping ----
    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Apply one agent turn. See the class docstring for the protocol, rewards and episode end."""
        ep = self._require()
        if ep.done:
            raise gym.error.ResetNeeded("the episode has ended; call reset() before stepping again")
        ep.turns += 1
        parsed = parse_action(action, self.protocol)
        shown = self._shown(action)
        results: list[ToolResult] = []
        penalty, game_reward = 0.0, 0.0
        terminated = game_truncated = False
        game_info: dict[str, Any] = {}
        error: str | None = None

        if parsed.kind == "invalid":
            assert parsed.error is not None
            error = parsed.error.code.value
            self._feedback(shown, f"error {error}: {parsed.error.message}")
        elif parsed.kind == "tool_call":
            results = self._tool_turn(parsed.tool_calls, shown, step=ep.turns, stage=1)
            for r in results:
                if r.name in TOOL_NAMES:
                    ep.tool_counts[r.name] += 1
                if r.error is not None:
                    ep.error_counts[r.error.code.value] += 1
                    penalty += self.penalties.format_error
            ep.tool_rounds += 1
            error = next((r.error.code.value for r in results if r.error is not None), None)
        else:
            assert parsed.answer is not None
            command = normalize_command(parsed.answer)
            valid = self.game.valid_actions()
            if valid is not None and command not in {normalize_command(v) for v in valid}:
                error = GAME_ACTION_ERROR
                self._feedback(
                    shown,
                    f"error {error}: {command!r:.80} is not an action of this game; the game did not move. "
                    f"Valid actions: {', '.join(valid)}.",
                )
            else:
                observation, reward, terminated, game_truncated, game_info = self.game.step(command)
                game_reward = float(reward)
                ep.game_steps += 1
                ep.score += game_reward
                ep.tool_rounds = 0
                if "success" in game_info:
                    ep.success = bool(game_info["success"])
                if "progress" in game_info:
                    ep.progress = float(game_info["progress"])
                self.context.append("assistant", shown, kind="reply", stage=1)
                self._post_observation(observation)
        if parsed.kind == "invalid" or error == GAME_ACTION_ERROR:
            ep.error_counts[error or ""] += 1
            penalty += self.penalties.format_error

        ep.tokens_peak = max(ep.tokens_peak, self.context.tokens)
        if not ep.overflowed and self.context.tokens > ep.config.context_budget:
            ep.overflowed = True
            penalty += self.penalties.overflow  # P_overflow, once (Eq. 26)
        truncated = False
        if not terminated:
            if game_truncated:
                ep.truncation = "game_truncated"
            elif ep.tool_rounds > ep.config.max_tool_rounds:
                ep.truncation = "tool_round_limit"
                penalty += self.penalties.rounds  # P_rounds (Eq. 26)
            elif ep.turns >= ep.config.max_turns:
                ep.truncation = "max_turns"
                penalty += self.penalties.rounds
            truncated = ep.truncation is not None
        return self._close_step(game_reward, penalty, terminated, truncated, error, results, game_info)

    def _close_step(
        self,
        game_reward: float,
        penalty: float,
        terminated: bool,
        truncated: bool,
        error: str | None,
        results: Sequence[ToolResult],
        game_info: Mapping[str, Any],
    ) -> tuple[str, float, bool, bool, dict[str, Any]]:
        ep = self._require()
        components = {"game": game_reward, "penalty": penalty}
        reward = game_reward + penalty
        ep.penalty += penalty
        ep.reward_sum += reward
        ep.done = terminated or truncated
        info = self._info(error, results, components, game_info)
        if ep.done:
            info["episode"] = self._episode_summary()
            if truncated:
                info["truncation_reason"] = ep.truncation
        return self.context.render(), reward, terminated, truncated, info

    def truncate(self, reason: str = "turn_cap") -> tuple[str, float, bool, bool, dict[str, Any]]:
        """End the episode now, as the env ends one that runs past its turn limits (P_rounds applies).

        For rollout loops that stop an episode before the env does (a trainer's turn cap, a library's max-turns,
        TRL's end of generation): the returned step has ``truncated=True``, the closing reward (P_rounds) and
        ``info["episode"]``, so the episode's step rewards still sum to its R. ``reason`` lands in
        ``info["truncation_reason"]``. The game does not move.

        Raises:
            gymnasium.error.ResetNeeded: No episode is running (never reset, or already ended).
        """
        ep = self._require()
        if ep.done:
            raise gym.error.ResetNeeded("the episode has ended; call reset() before truncating it")
        ep.truncation = str(reason)
        return self._close_step(0.0, self.penalties.rounds, False, True, None, [], {})

    def episode_reward(self) -> float:
        """R of the episode so far: the sum of its step rewards (the whole episode's R once it has ended)."""
        return self._require().reward_sum

    def _feedback(self, shown: str, message: str) -> None:
        """A rejected turn: the agent's text and what was wrong with it enter the context."""
        self.context.append("assistant", shown, kind="action", stage=1)
        self.context.append("tool", message, kind="feedback", stage=1)
        self._require().tool_rounds += 1

    # ---- reporting ----
    def _info(
        self,
        error: str | None,
        results: Sequence[ToolResult],
        components: Mapping[str, float],
        game_info: Mapping[str, Any],
    ) -> dict[str, Any]:
        ep = self._require()
        valid = self.game.valid_actions()
        return {
            "game_seed": ep.game_seed,
            "step": ep.turns,
            "game_step": ep.game_steps,
            "tool_round": ep.tool_rounds,
            "action_error": error,
            "call_errors": [r.error.code.value for r in results if r.error is not None],
            "tool_results": [r.to_dict() for r in results],
            "reward_components": dict(components),
            "game_info": dict(game_info),
            "valid_actions": list(valid) if valid is not None else None,
            "context_tokens": self.context.tokens,
            "memory_size": len(self.store),
            "messages": self.context.to_dicts(),
            "tools": json.loads(self._tools_json),
        }

    def _episode_summary(self) -> dict[str, Any]:
        ep = self._require()
        success = ep.success if ep.success is not None else ep.score > 0
        return {
            "R": ep.reward_sum,
            "success": bool(success),
            "score": ep.score,
            "progress": ep.progress if ep.progress is not None else float(success),
            "penalty": ep.penalty,
            "tool_counts": {name: ep.tool_counts.get(name, 0) for name in TOOL_NAMES},
            "error_counts": dict(sorted(ep.error_counts.items())),
            "steps": ep.turns,
            "game_steps": ep.game_steps,
            "context_tokens_peak": ep.tokens_peak,
            "context_tokens_final": self.context.tokens,
            "overflowed": ep.overflowed,
            "truncation_reason": ep.truncation,
            "memory_size": len(self.store),
            "episode_index": ep.index,
            "game_seed": ep.game_seed,
        }

    # ---- snapshots ----
    def _game_snapshots(self) -> tuple[Callable[[], Any], Callable[[Any], None]]:
        get, put = getattr(self.game, "get_state", None), getattr(self.game, "set_state", None)
        if not callable(get) or not callable(put):
            raise NotImplementedError(
                f"get_state()/set_state() need a game that can snapshot itself; {type(self.game).__name__} has no "
                "get_state() and set_state(state) methods. Add them to its adapter (a deepcopy of the inner env "
                "works for pure-Python games such as minigrid), or replay the episode's actions from its seed instead"
            )
        return get, put

    def get_state(self) -> dict[str, Any]:
        """A deep snapshot of the whole world (episode, context, long-term store, RNG and the game).

        Raises:
            NotImplementedError: The game has no ``get_state``/``set_state`` (its message says what to do).
        """
        get, _ = self._game_snapshots()
        return self._snapshot(episodes_started=self._episodes_started, game=get())

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore a snapshot taken by :meth:`get_state` on an env with the same configuration and game.

        Raises:
            ConfigError: The snapshot is not one, or is of another version.
            NotImplementedError: The game has no ``get_state``/``set_state``.
        """
        _, put = self._game_snapshots()
        self._restore(state, lambda ep: self._new_context(ep.config))
        put(state["game"])
        self._episodes_started = int(state["episodes_started"])


# ---- evaluation ----


@dataclass
class TextEvalResult:
    """Per-episode rows of :func:`evaluate_text_game` and their means."""

    policy: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def summary(self) -> dict[str, float]:
        """Means over episodes (``success`` becomes the success rate), plus ``episodes``."""
        if not self.rows:
            return {"episodes": 0.0}
        out = {k: float(np.mean([float(r[k]) for r in self.rows])) for k in self.rows[0]}
        out["episodes"] = float(len(self.rows))
        return out


def _row(episode: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "success": bool(episode["success"]),
        "R": float(episode["R"]),
        "score": float(episode["score"]),
        "progress": float(episode["progress"]),
        "steps": int(episode["steps"]),
        "game_steps": int(episode["game_steps"]),
        "errors": sum(episode["error_counts"].values()),
        "truncated": episode["truncation_reason"] is not None,
        "tokens_peak": int(episode["context_tokens_peak"]),
    }
    for name in TOOL_NAMES:
        row[f"tool/{name}"] = episode["tool_counts"].get(name, 0)
    return row


def evaluate_text_game(
    env: gym.Env[str, str],
    policy: Any,
    *,
    episodes: int = 50,
    seed: int = 0,
    seeds: Iterable[int] | None = None,
) -> TextEvalResult:
    """Run ``policy`` (``reset(info)`` and ``act(observation, info) -> str``) for ``episodes`` games.

    Episode i resets with ``seed + i`` (or the i-th of ``seeds``). Returns rows with ``success``, ``R``,
    ``score``, ``progress``, ``steps``, ``game_steps``, ``errors``, ``truncated``, ``tokens_peak`` and the
    calls per tool (``tool/<name>``).
    """
    check("episodes", episodes, "int", ge=0)
    order = list(seeds) if seeds is not None else [seed + i for i in range(episodes)]
    result = TextEvalResult(policy=getattr(policy, "name", type(policy).__name__))
    t0 = time.perf_counter()
    for s in order:
        obs, info = env.reset(seed=s)
        policy.reset(info)
        while True:
            obs, _, terminated, truncated, info = env.step(policy.act(obs, info))
            if terminated or truncated:
                break
        result.rows.append(_row(info["episode"]))
    result.wall_s = time.perf_counter() - t0
    return result
