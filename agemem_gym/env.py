"""The AgeMem environment: three-stage episodes in which an LLM agent manages long- and short-term memory.

The env only orchestrates (DESIGN.md §2): :func:`~agemem_gym.protocol.parse_action` turns text into an action,
:func:`~agemem_gym.tools.execute` runs each call on the :class:`~agemem_gym.memory.MemoryStore` or the
:class:`~agemem_gym.context.Context`, :mod:`agemem_gym.rewards` prices the result, and the context renders the
observation.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Literal, get_args

import gymnasium as gym
import numpy as np

from agemem_gym._tool_env import MemoryToolsEnv, config
from agemem_gym._validate import check, check_field
from agemem_gym.context import Context, MessageKind
from agemem_gym.context.summarizers import Summarizer
from agemem_gym.errors import ConfigError, GameableRewardWarning
from agemem_gym.memory import MemoryStore, StoreConfig
from agemem_gym.memory.embedders import Embedder
from agemem_gym.prompts import PromptStyle, question_turn, stage_turn, system_prompt
from agemem_gym.protocol import Action, ProtocolConfig, parse_action
from agemem_gym.rewards import (
    AnswerMetric,
    EpisodeLedger,
    Judge,
    PenaltyConfig,
    RewardRules,
    RewardWeights,
    _warn_if_gameable,
    resolve_weights,
)
from agemem_gym.rewards.grounding import GroundingConfig
from agemem_gym.task import Paragraph, Task, TaskSuite
from agemem_gym.tools import TOOL_NAMES, ToolResult, ToolSettings

__all__ = ["SHORT_EPISODE", "AgeMemEnv", "EpisodeConfig"]


@dataclass(frozen=True)
class EpisodeConfig:
    """How an episode is laid out and limited (per-episode overrides go through ``reset(options=...)``).

    The defaults follow the paper's set-up on HotpotQA's distractor setting: stage 1 shares the 2 gold
    paragraphs and 3 distractors, one paragraph per user turn (5 rounds); stage 2 shares the other 5 distractors
    (5 rounds); stage 3 asks the question; an 8,192-token context budget. Stage 2 never shows a paragraph that
    mentions the answer (stage 2 is not reset before the question): such distractors go to stage 1 first.

    Attributes:
        stage1_distractors: Distractor paragraphs mixed into stage 1 with the gold paragraphs.
        stage2_paragraphs: Distractor paragraphs in stage 2 (the task's remaining distractors first).
        stage2_fill: Top stage 2 up with other tasks' distractors when the task has too few.
        paragraphs_per_turn: Paragraphs per user turn in stages 1 and 2.
        max_tool_rounds: Tool (or malformed) turns allowed per user message; one more truncates the episode.
        max_steps: Agent turns allowed per episode; reaching it without the final answer truncates.
        context_budget: T_max, the context's token budget (Eq. 19 and the overflow penalty).
        answer_metric: How the final answer is scored (R_task, Eq. 17): ``"gated_recall"`` (the default,
            :func:`~agemem_gym.rewards.gated_recall`: exact match, partial credit for a strict part of the gold,
            nothing for an answer with a word the gold lacks), ``"em"``, or ``"f1"`` (HotpotQA's token F1) and
            ``"fuzzy"`` (F1 or a misspelling match), which pay for listing candidates: choosing either warns with
            :class:`~agemem_gym.errors.GameableRewardWarning`.
    """

    stage1_distractors: int = 3
    stage2_paragraphs: int = 5
    stage2_fill: bool = True
    paragraphs_per_turn: int = 1
    max_tool_rounds: int = 5
    max_steps: int = 100
    context_budget: int = 8192
    answer_metric: AnswerMetric = "gated_recall"

    def __post_init__(self) -> None:
        for name, low in (
            ("stage1_distractors", 0),
            ("stage2_paragraphs", 0),
            ("paragraphs_per_turn", 1),
            ("max_tool_rounds", 0),
            ("max_steps", 1),
            ("context_budget", 1),
        ):
            check_field(self, name, "int", ge=low)
        check_field(self, "stage2_fill", "bool")
        check_field(self, "answer_metric", choices=get_args(AnswerMetric))
        _warn_if_gameable(self.answer_metric, stacklevel=3)

    def override(self, changes: Mapping[str, Any]) -> EpisodeConfig:
        """A copy with ``changes`` applied (validated; unknown names raise)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ConfigError(f"unknown episode setting(s) {sorted(unknown)}; the settings are {sorted(known)}")
        if "answer_metric" in changes:  # picked for this episode: warn as the constructor does
            return replace(self, **changes)
        with warnings.catch_warnings():  # kept from the constructor, which warned once already
            warnings.simplefilter("ignore", GameableRewardWarning)
            return replace(self, **changes)


SHORT_EPISODE: Mapping[str, int] = MappingProxyType(
    {"stage1_distractors": 0, "paragraphs_per_turn": 1, "stage2_paragraphs": 1, "max_tool_rounds": 2}
)
"""The short episodes that CPU runs, demos and trainer comparisons use (``gym.make(id, episode=dict(SHORT_EPISODE))``):
stage 1 shares the gold paragraphs only, one a message; stage 2 one distractor; two tool rounds per user message
(the scripted oracle needs two)."""


@dataclass
class _Episode:
    """Everything that changes during an episode except the store and the context."""

    task: Task
    turns: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]  # user messages of stages 1, 2, 3
    paragraphs: tuple[tuple[tuple[Paragraph, ...], ...], ...]  # per stage, per user message: what it shares
    config: EpisodeConfig
    ledger: EpisodeLedger
    stage: int = 1
    turn: int = 0  # index of the current user message within its stage
    tool_rounds: int = 0  # non-answer turns spent on the current user message
    steps: int = 0
    done: bool = False
    answer: str | None = None
    truncation: str | None = None
    reward_sum: float = 0.0
    phi: dict[str, float] = field(default_factory=dict)  # Φ(s) by term after the last step (Φ(s_0) = 0)


_STAGE_KIND: dict[int, MessageKind] = {1: "material", 2: "distractor", 3: "question"}


class AgeMemEnv(MemoryToolsEnv[_Episode]):
    """AgeMem's three-stage memory-management environment over a suite of multi-hop questions.

    ## Description
    An LLM agent converses with a user over three stages (paper §3.3). Stage 1 (LTM construction): the user
    casually shares the task's material, a few paragraphs per turn (the gold paragraphs mixed with some
    distractors), and the agent may store what matters with ``Add_memory`` / ``Update_memory`` /
    ``Delete_memory``. Stage 2 (STM control): the context is reset to the system prompt (long-term memory
    persists) and the user shares related but irrelevant paragraphs; the agent may ``Summary_context`` or
    ``Filter_context``. Stage 3 (integrated reasoning): the context continues from stage 2 and the user asks the
    question; the agent may ``Retrieve_memory`` and then answers.

    ## Action Space
    Text (:class:`~agemem_gym.spaces.UnicodeText`): ``<think>…</think>`` then ``<tool_call>[…]</tool_call>`` or
    ``<answer>…</answer>`` (see :mod:`agemem_gym.protocol`). Malformed text is never an exception: it is an
    error code in ``info["action_error"]``, a tool message telling the agent what was wrong, and a penalty.

    ## Observation Space
    Text: the current context rendered as ``[role]``-headed messages. ``info["messages"]`` carries the same
    context as OpenAI-style dicts (for chat templates) and ``info["tools"]`` the tool schemas.

    ## Rewards
    The paper's R(τ) = w_task·R_task + w_context·R_context + w_memory·R_memory + P (App. A.2), paid as
    potential-based per-step shaping whose step rewards sum exactly to R(τ). The env only reports what happened;
    :class:`~agemem_gym.rewards.RewardRules` decides what it counts for (what each term measures, and why it
    resists the exploits of :mod:`agemem_gym.evaluation.audit`, is in :mod:`agemem_gym.rewards`).
    ``info["reward_components"]`` splits each step's reward by term; the last step's ``info["episode"]`` holds the
    totals, memory quality against the gold supporting facts, and tool counts.

    ## Starting State
    A task from the suite (``options={"task_id": ...}`` picks one; otherwise drawn with ``np_random``). The stage
    material and its order depend only on the task id (and ``options["material_seed"]``), so K envs reset with
    the same task id share their start exactly, as GRPO groups need.

    ## Episode End
    Terminated when the agent answers the stage-3 question. Truncated (reason in ``info["truncation_reason"]``)
    when a user message gets more than ``max_tool_rounds`` non-answer turns (``"tool_round_limit"``) or the
    episode reaches ``max_steps`` turns (``"max_steps"``); both cost P_rounds, and R_task is P_no-answer.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``suite`` | required | the :class:`~agemem_gym.task.TaskSuite` to draw tasks from |
    | ``split`` | ``"all"`` | ``"train"`` / ``"heldout"``: a fixed 80/20 split by task id (:meth:`TaskSuite.split`) |
    | ``embedder`` | ``"hash"`` | ``"hash"``, ``"minilm"`` or a callable ``list[str] -> array`` |
    | ``reward_weights`` | ``"paper"`` | ``"paper"``, ``"released_weights"`` or a mapping of weights |
    | ``episode`` | :class:`EpisodeConfig` | stage layout and limits (mapping or instance) |
    | ``penalties`` | :class:`~agemem_gym.rewards.PenaltyConfig` | penalty coefficients |
    | ``tools`` | :class:`~agemem_gym.tools.ToolSettings` | top_k bounds, filter θ, content limits |
    | ``protocol`` | :class:`~agemem_gym.protocol.ProtocolConfig` | action length and calls-per-turn limits |
    | ``store`` | :class:`~agemem_gym.memory.StoreConfig` | hnswlib parameters and near-duplicate policy |
    | ``grounding`` | :class:`~agemem_gym.rewards.grounding.GroundingConfig` | when a sentence holds a gold fact; preservation |
    | ``prompt_style`` | ``"paper"`` | ``"paper"`` (full schemas) or ``"compact"`` |
    | ``tokenizer`` | ``None`` | transformers tokenizer or ``str -> int`` for token accounting |
    | ``summarizer`` | ``"extractive"`` | used by ``Summary_context`` when the agent gives no summary |
    | ``judge`` | ``None`` | ``(question, prediction, gold) -> [0, 1]`` replacing the answer metric |
    | ``render_mode`` | ``None`` | ``"ansi"`` returns the rendered context |

    ## Version History
    * v0: initial release. Its reward was rewritten in place before any release was published: sentence-level
      grounding, stage-aware storage and relevance, maintenance as measured improvement, preservation with a
      precision side, no answer leak into stage 2 (the ids are pinned by DESIGN.md, so the id did not change;
      episode returns from earlier checkouts are not comparable).
    """

    def __init__(
        self,
        suite: TaskSuite,
        *,
        split: Literal["all", "train", "heldout"] = "all",
        embedder: str | Embedder | Callable[[list[str]], Any] = "hash",
        reward_weights: str | Mapping[str, float] | RewardWeights = "paper",
        episode: EpisodeConfig | Mapping[str, Any] | None = None,
        penalties: PenaltyConfig | Mapping[str, float] | None = None,
        tools: ToolSettings | Mapping[str, Any] | None = None,
        protocol: ProtocolConfig | Mapping[str, Any] | None = None,
        store: StoreConfig | Mapping[str, Any] | None = None,
        grounding: GroundingConfig | Mapping[str, Any] | None = None,
        prompt_style: PromptStyle = "paper",
        tokenizer: Any = None,
        summarizer: str | Summarizer | None = None,
        judge: Judge | None = None,
        render_mode: str | None = None,
    ) -> None:
        if not isinstance(suite, TaskSuite):
            raise ConfigError(f"'suite' must be a TaskSuite, got {type(suite).__name__}")
        if judge is not None and not callable(judge):
            raise ConfigError(f"'judge' must be a callable (question, prediction, gold) -> float, got {judge!r}")
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
        self.suite = suite.split(split)
        self.weights = resolve_weights(reward_weights)
        self.episode_config: EpisodeConfig = config(EpisodeConfig, episode, "episode")
        self.grounding: GroundingConfig = config(GroundingConfig, grounding, "grounding")
        self.rules = RewardRules(self.weights, self.penalties, self.grounding, judge=judge)
        self._rules = self.rules  # this episode's rules (its answer metric may be a reset option)
        self.judge = judge
        self.context = self._new_context(self.episode_config)

    # ---- set-up ----
    def _new_context(self, config: EpisodeConfig) -> Context:
        return self._context_with(system_prompt(self.prompt_style, self._tools, config.context_budget))

    def _material(
        self, task: Task, config: EpisodeConfig, material_seed: int
    ) -> tuple[tuple[tuple[tuple[Paragraph, ...], ...], ...], tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
        """The paragraphs and user messages of each stage (per user message). Depends only on the task, the
        config and ``material_seed``."""
        digest = hashlib.blake2b(f"{task.task_id}\x00{material_seed}".encode(), digest_size=8).digest()
        rng = np.random.default_rng(int.from_bytes(digest, "little"))
        distractors = list(task.distractor_paragraphs)
        order = rng.permutation(len(distractors))
        distractors = [distractors[int(i)] for i in order]
        # Stage 2 is not reset before the question, so it must not state the answer (else the answer is read
        # off the context and long-term memory is not needed): distractors that mention it go to stage 1, whose
        # context is wiped; those that do not fit there are not shown.
        leaking = [p for p in distractors if task.mentions_answer(p)]
        clean = [p for p in distractors if not task.mentions_answer(p)]
        n1 = min(config.stage1_distractors, len(distractors))
        first = (leaking + clean)[:n1]
        stage1 = list(task.gold_paragraphs) + first
        stage1 = [stage1[int(i)] for i in rng.permutation(len(stage1))]
        stage2 = [p for p in clean if p not in first][: config.stage2_paragraphs]
        if config.stage2_fill and len(stage2) < config.stage2_paragraphs:
            stage2 += self.suite.filler_paragraphs(
                rng, config.stage2_paragraphs - len(stage2), exclude=task, reject=task.mentions_answer
            )

        def chunks(paragraphs: Sequence[Paragraph]) -> tuple[tuple[Paragraph, ...], ...]:
            k = config.paragraphs_per_turn
            return tuple(tuple(paragraphs[i : i + k]) for i in range(0, len(paragraphs), k))

        shared: tuple[tuple[tuple[Paragraph, ...], ...], ...] = (chunks(stage1), chunks(stage2), ((),))
        texts: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] = (
            tuple(stage_turn(c, rng) for c in shared[0]),
            tuple(stage_turn(c, rng) for c in shared[1]),
            (question_turn(task.question),),
        )
        return shared, texts

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Start an episode.

        Args:
            seed: Seeds ``np_random`` (which only picks the task when none is named).
            options: ``task_id`` (start this task), ``material_seed`` (another ordering and wording of the same
                task's material; default 0), ``memories`` (long-term memories to start with, e.g. from an earlier
                session: strings or ``{"content", "metadata", "memory_type"}`` mappings; they count toward memory
                quality but not toward the agent's storage reward), and any :class:`EpisodeConfig` field to
                override for this episode.
        """
        super().reset(seed=seed)
        opts = dict(options or {})
        task_id = opts.pop("task_id", None)
        memories = opts.pop("memories", ())
        material_seed = opts.pop("material_seed", 0)
        check("options['material_seed']", material_seed, "int")
        config = self.episode_config.override(opts) if opts else self.episode_config
        task = self.suite.get(task_id) if task_id is not None else self.suite.sample(self.np_random)
        shared, (stage1, stage2, stage3) = self._material(task, config, material_seed)
        # The rules are not part of the snapshot (a judge callable need not pickle); the episode's answer metric is.
        self._rules = replace(self.rules, answer_metric=config.answer_metric)
        self._ep = _Episode(
            task=task,
            turns=(stage1, stage2, stage3),
            paragraphs=shared,
            config=config,
            ledger=self._rules.new_ledger(
                task.supporting_sentences, [f.title for f in task.supporting_facts], task.question
            ),
        )
        self.store = MemoryStore(self.embedder, config=self.store_config)
        self._seed_memories(memories)
        self.context = self._new_context(config)
        self._open_stage(1)
        self._ep.ledger.tokens_peak = self.context.tokens
        return self.context.render(), self._info(None, [], {}, first=True)

    def _seed_memories(self, memories: Any) -> None:
        """Add ``options["memories"]`` to the fresh store (one batched call) and ground them."""
        if isinstance(memories, (str, bytes)) or not isinstance(memories, Sequence):
            raise ConfigError(f"options['memories'] must be a sequence of strings or mappings, got {memories!r:.80}")
        if not memories:
            return
        contents: list[str] = []
        metadatas: list[Mapping[str, Any] | None] = []
        for i, m in enumerate(memories):
            if isinstance(m, str):
                contents.append(m)
                metadatas.append(None)
            elif isinstance(m, Mapping) and isinstance(m.get("content"), str):
                contents.append(m["content"])
                metadatas.append(m.get("metadata"))
            else:
                raise ConfigError(
                    f"options['memories'][{i}] must be a string or a mapping with 'content', got {m!r:.80}"
                )
        ep = self._require()
        for res in self.store.add_many(contents, metadatas=metadatas, step=0):
            if res.action == "added":
                self._rules.seed(ep.ledger, res.item.id, res.item.content)

    def _open_stage(self, stage: int) -> None:
        """Enter ``stage`` (skipping empty ones) and post its first user message."""
        ep = self._require()
        while stage < 3 and not ep.turns[stage - 1]:
            stage += 1
        if stage >= 2 and ep.stage == 1:
            self.context.reset()  # DESIGN.md §4: the context is reset at the start of stage 2; LTM persists
        ep.stage, ep.turn, ep.tool_rounds = stage, 0, 0
        self._post_user()

    def _post_user(self) -> None:
        """Post the current user message (stage-1 material shows its gold facts to the agent)."""
        ep = self._require()
        if ep.stage == 1:
            self._rules.show(ep.ledger, (p.title for p in ep.paragraphs[0][ep.turn]))
        self.context.append("user", ep.turns[ep.stage - 1][ep.turn], kind=_STAGE_KIND[ep.stage], stage=ep.stage)

    # ---- stepping ----
    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Apply one agent turn. See the class docstring for the protocol, rewards and episode end."""
        ep = self._require()
        if ep.done:
            raise gym.error.ResetNeeded("the episode has ended; call reset() before stepping again")
        ep.steps += 1
        rules, ledger = self._rules, ep.ledger
        phi_before = ep.phi
        parsed = parse_action(action, self.protocol)
        results: list[ToolResult] = []
        penalty, task_term, terminated = 0.0, 0.0, False

        shown = self._shown(action)
        if parsed.kind == "invalid":
            assert parsed.error is not None
            penalty += rules.turn(ledger, ep.stage, [], parsed.error.code.value)
            self.context.append("assistant", shown, kind="action", stage=ep.stage)
            self.context.append(
                "tool", f"error {parsed.error.code.value}: {parsed.error.message}", kind="feedback", stage=ep.stage
            )
            ep.tool_rounds += 1
        elif parsed.kind == "tool_call":
            results = self._tool_turn(parsed.tool_calls, shown, step=ep.steps, stage=ep.stage)
            penalty += rules.turn(ledger, ep.stage, results, None)
            ep.tool_rounds += 1
        else:
            terminated, task_term = self._answer(parsed, shown)

        penalty += rules.context(ledger, self.context.tokens, ep.config.context_budget)
        truncated = False
        if not terminated:
            if ep.tool_rounds > ep.config.max_tool_rounds:
                ep.truncation = "tool_round_limit"
            elif ep.steps >= ep.config.max_steps:
                ep.truncation = "max_steps"
            if ep.truncation is not None:
                truncated = True
                rounds, task_term = rules.truncate(ledger)
                penalty += rounds
        error = parsed.error.code.value if parsed.error is not None else None
        if error is None:
            error = next((r.error.code.value for r in results if r.error is not None), None)
        return self._close_step(phi_before, penalty, task_term, terminated, truncated, error, results)

    def _close_step(
        self,
        phi_before: Mapping[str, float],
        penalty: float,
        task_term: float,
        terminated: bool,
        truncated: bool,
        error: str | None,
        results: Sequence[ToolResult],
    ) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Price the step as a potential difference plus its task term and penalties, and build its info."""
        ep = self._require()
        ep.ledger.penalty += penalty
        terms, phi_after = self._rules.measure(ep.ledger)
        components = {k: phi_after[k] - phi_before.get(k, 0.0) for k in phi_after}
        ep.phi = phi_after
        components["task"] = task_term
        components["penalty"] = penalty
        reward = float(sum(components.values()))
        ep.reward_sum += reward
        ep.done = terminated or truncated
        info = self._info(error, results, components, terms=terms)
        if ep.done:
            info["episode"] = self._episode_summary()
            if truncated:
                info["truncation_reason"] = ep.truncation
        return self.context.render(), reward, terminated, truncated, info

    def truncate(self, reason: str = "turn_cap") -> tuple[str, float, bool, bool, dict[str, Any]]:
        """End the episode now, as the env ends one that runs past its limits (P_rounds and P_no-answer apply).

        For rollout loops that stop an episode before the env does (a trainer's turn cap, a library's max-turns):
        the returned step has ``truncated=True``, the reward that closes the episode, and ``info["episode"]``, so
        the episode's step rewards still sum to its R(τ). ``reason`` lands in ``info["truncation_reason"]``.

        Raises:
            gymnasium.error.ResetNeeded: No episode is running (never reset, or already ended).
        """
        ep = self._require()
        if ep.done:
            raise gym.error.ResetNeeded("the episode has ended; call reset() before truncating it")
        phi_before = ep.phi
        ep.truncation = reason
        rounds, task_term = self._rules.truncate(ep.ledger)
        return self._close_step(phi_before, rounds, task_term, False, True, None, [])

    def _answer(self, parsed: Action, shown: str) -> tuple[bool, float]:
        """Close the current user turn; on the stage-3 question, score the answer. Returns (terminated, task term)."""
        ep = self._require()
        assert parsed.answer is not None
        if ep.stage < 3:
            self._rules.reply(ep.ledger)
            self.context.append("assistant", shown, kind="reply", stage=ep.stage)
            ep.turn += 1
            ep.tool_rounds = 0
            if ep.turn < len(ep.turns[ep.stage - 1]):
                self._post_user()
            else:
                self._open_stage(ep.stage + 1)
            return False, 0.0
        # Eq. 19 and 21 are measured on the context "when the final answer is generated", before it is added.
        task_term = self._rules.final_answer(
            ep.ledger,
            parsed.answer,
            ep.task.answer,
            ep.task.question,
            ((m.kind, m.content) for m in self.context.messages),
            self.context.tokens,
            ep.config.context_budget,
        )
        ep.answer = parsed.answer
        self.context.append("assistant", shown, kind="reply", stage=3)
        return True, task_term

    # ---- reporting ----
    def _info(
        self,
        error: str | None,
        results: Sequence[ToolResult],
        components: Mapping[str, float],
        *,
        first: bool = False,
        terms: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        ep = self._require()
        ledger = ep.ledger
        info: dict[str, Any] = {
            "task_id": ep.task.task_id,
            "stage": ep.stage,
            "turn": ep.turn,
            "step": ep.steps,
            "tool_round": ep.tool_rounds,
            "action_error": error,
            "call_errors": [r.error.code.value for r in results if r.error is not None],
            "tool_results": [r.to_dict() for r in results],
            "reward_components": dict(components) if not first else {},
            "reward_terms": terms if terms is not None else self._rules.terms(ledger),
            "context_tokens": self.context.tokens,
            "memory_size": len(self.store),
            "messages": self.context.to_dicts(),
            "tools": json.loads(self._tools_json),
        }
        return info

    def _episode_summary(self) -> dict[str, Any]:
        ep = self._require()
        ledger = ep.ledger
        return {
            "R": ep.reward_sum,
            **self._rules.summary(ledger),
            "weights": asdict(self.weights),
            "tool_counts": {name: ledger.tool_counts.get(name, 0) for name in TOOL_NAMES},
            "tool_counts_by_stage": [
                {name: counts.get(name, 0) for name in TOOL_NAMES} for counts in ledger.stage_tool_counts
            ],
            "retrieved_before_answer": ep.answer is not None and ledger.stage_tool_counts[2]["Retrieve_memory"] > 0,
            "error_counts": dict(sorted(ledger.error_counts.items())),
            "context_tokens_peak": ledger.tokens_peak,
            "context_tokens_final": self.context.tokens,
            "overflowed": ledger.overflowed,
            "steps": ep.steps,
            "answer": ep.answer,
            "gold_answer": ep.task.answer,
            "truncation_reason": ep.truncation,
            "memory_size": len(self.store),
        }

    def episode_reward(self) -> float:
        """R(τ) recomputed in closed form from the ledger (Eq. 16); equals the sum of the step rewards so far
        once the episode has ended. Useful to check the shaping identity."""
        ep = self._require()
        return self._rules.episode_reward(ep.ledger)

    # ---- snapshots ----
    def get_state(self) -> dict[str, Any]:
        """A deep snapshot of the whole world (episode, ledger, context, long-term store, RNG) for branching
        rollouts and exact replay. Picklable; restoring it with :meth:`set_state` reproduces every later step."""
        return self._snapshot()

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore a snapshot taken by :meth:`get_state` on an env with the same configuration.

        Raises:
            ConfigError: The snapshot is not one, or is of another version.
        """
        ep = self._restore(state, lambda ep: self._new_context(ep.config))
        self._rules = replace(self.rules, answer_metric=ep.config.answer_metric)

    @property
    def task(self) -> Task:
        """The current episode's task (privileged: for scripted oracles and analysis, not for the agent)."""
        return self._require().task

    @property
    def shared_paragraphs(self) -> tuple[Paragraph, ...]:
        """The paragraphs the current user message shares (privileged, like :attr:`task`)."""
        ep = self._require()
        return ep.paragraphs[ep.stage - 1][ep.turn] if ep.stage < 3 else ()

    @property
    def is_last_turn_of_stage(self) -> bool:
        """True while the current user message is the last of its stage (privileged, like :attr:`task`)."""
        ep = self._require()
        return ep.turn == len(ep.turns[ep.stage - 1]) - 1

    @property
    def stage(self) -> int:
        """The current stage (1, 2 or 3)."""
        return self._require().stage
