"""verifiers 0.4: AgeMem episodes as a ``verifiers.v1`` taskset, env and harness, re-prompted from the edited context.

Written against verifiers 0.4.0, whose only API is ``verifiers.v1`` (``import verifiers.v1 as vf``; source:
``verifiers/v1/{taskset,task,env,agent,harness,graph}.py``). Its contract, as that source defines it:

- A **taskset** (``vf.Taskset``) yields typed **tasks** (``vf.Task`` over frozen ``vf.TaskData``); a task scores a
  finished **trace** with ``@vf.reward`` / ``@vf.metric`` methods.
- An **env** (``vf.Env``) turns one task into one episode in ``run(task, agents)``. ``agents.agent.interaction(task)``
  holds a rollout open turn by turn with the env as the user: ``await interaction.turn(messages)`` runs one harness
  segment and returns its ``Segment`` (``last_reply``; ``terminated`` once a limit such as ``max_turns`` refused the
  turn). Leaving the interaction closes the rollout, which runs the task's scoring.
- A **harness** is the agent's program; every model call it makes goes through the rollout's interception endpoint,
  which records it into the trace's **message graph**: one node per distinct message, a new branch wherever a
  prompt stops extending the previous one ("prompt divergence from compaction ... or other history rewrites
  produces multiple leaves", ``graph.py``). Each branch is one training sample.
- Plugins are found by id: ``vf-eval <id>`` (and prime-rl's ``[env.taskset] id``) imports the top-level module of
  that name and takes the ``Taskset`` (and, if exported, the ``Env`` and ``Harness``) subclasses in its ``__all__``.
  Dotted ids do not resolve (verifiers looks for ``verifiers.v1.tasksets.<id>`` first), so the plugin is the
  top-level module ``agemem_verifiers`` (``examples/agemem_verifiers.py``, not installed: put ``examples`` on
  ``PYTHONPATH``), which re-exports this module.

Why not verifiers' built-in OpenEnv taskset pointed at ``agemem-serve``: its env sends each observation as a *new*
user turn of one growing conversation (``interaction.turn(payload())``, the JSON of the observation and the action
schema), so every earlier observation stays in the prompt; the env's stage-2 reset, ``Summary_context`` and
``Filter_context`` would change the served env's context and rewards but not what the model sees. It also needs
``openenv>=0.4.1``, while ``agemem-serve`` is built on openenv-core 0.3.

What this module does instead. :class:`AgeMemEnv` plays the user: it resets an in-process AgeMem env on the task,
and every turn hands the interaction the env's *edited* context (``info["messages"]``, after the stage-2 reset and
the agent's ``Summary_context`` / ``Filter_context`` edits) as the whole prompt. :class:`AgeMemHarness` is a
tool-less chat harness that runs in-process (no sandbox, no program to install): it sends exactly that prompt to the
model through the interception endpoint, one chat completion per turn. The model's reply is the agent's text in the
protocol (``<think>``, ``<tool_call>`` or ``<answer>``) and becomes one env step. Where the env edits its context,
the prompt no longer extends the previous one and verifiers' graph starts a branch, so the trainer (prime-rl) trains
each segment on exactly the context the model saw, the step-wise training of the paper. The env's tool results
travel as user messages: a chat ``tool`` message must answer an OpenAI ``tool_call_id``, and the protocol's tool
calls are text.

Rewards. The task's reward ``agemem_reward`` is the env's R(τ) (weight 1); metrics ``task_score`` (R_task) and
``memory_f1`` (the store against the gold supporting facts). ``trace.info["agemem"]`` holds the per-step rewards
(they sum to R(τ)), the per-step ``reward_components`` and action errors, and the episode summary
(``info["episode"]``). A rollout that verifiers stops before the env ends the episode (the agent's ``max_turns`` or
token limits, a failed model call) is ended through the env (``truncate``, reason ``"rollout_stopped"``): the env
scores it as a truncated episode (R so far + P_rounds + w_task · P_no-answer).

>>> import verifiers.v1 as vf
>>> taskset = AgeMemTaskset(AgeMemTasksetConfig(id="agemem-verifiers", num_tasks=2))
>>> [(t.data.task_id, t.data.prompt) for t in taskset]
[('syn-medium-s0-000000', None), ('syn-medium-s0-000001', None)]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import gymnasium as gym

import agemem_gym  # noqa: F401  (registers the env ids)
from agemem_gym.adapters._common import close_episode

try:
    import verifiers.v1 as vf
    from pydantic import Field  # a dependency of verifiers
    from verifiers.v1.runtimes import ProgramResult, SubprocessConfig
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "agemem_gym.adapters.verifiers_v1 needs verifiers 0.4 (its verifiers.v1 API): "
        f"pip install 'agemem-gym[verifiers]' ({err}); for verifiers 0.3 use agemem_gym.adapters.verifiers"
    ) from err

__all__ = [
    "PLUGIN_ID",
    "AgeMemData",
    "AgeMemEnv",
    "AgeMemEnvConfig",
    "AgeMemHarness",
    "AgeMemHarnessConfig",
    "AgeMemTask",
    "AgeMemTaskset",
    "AgeMemTasksetConfig",
    "env_config",
    "vf_messages",
]

PLUGIN_ID = "agemem-verifiers"
"""The id verifiers finds the plugin by (``vf-eval agemem-verifiers``, ``--env.taskset.id agemem-verifiers``)."""


def vf_messages(messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """The env's context as chat messages for the model: system, user and assistant as they are, the env's tool
    results as user messages (a chat ``tool`` message must answer a ``tool_call_id``; the protocol's calls are text).

    >>> vf_messages([{"role": "system", "content": "s"}, {"role": "tool", "content": "[Add_memory] added m_0001"}])
    [{'role': 'system', 'content': 's'}, {'role': 'user', 'content': '[Add_memory] added m_0001'}]
    """
    roles = {"system": "system", "user": "user", "assistant": "assistant"}
    return [{"role": roles.get(m["role"], "user"), "content": m["content"]} for m in messages]


# ---- the taskset ----
class AgeMemData(vf.TaskData):
    """One AgeMem episode: which env, which task, which stage material (the row is the whole start state)."""

    env_id: str = "AgeMem-Synthetic-v0"
    """The Gymnasium id."""
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for ``gym.make``."""
    task_id: str
    """The suite's task id (``reset(options={"task_id": ...})``)."""
    material_seed: int = 0
    """The stage material's seed (``reset(options={"material_seed": ...})``)."""
    answer: str = ""
    """The gold answer, for reference (the env scores the episode itself)."""


class AgeMemTask(vf.Task[AgeMemData]):
    """Scores a trace with what :class:`AgeMemEnv` recorded in ``trace.info["agemem"]``."""

    @staticmethod
    def _episode(trace: vf.Trace) -> dict[str, Any]:
        return dict((trace.info.get("agemem") or {}).get("episode") or {})

    @vf.reward(weight=1.0)
    async def agemem_reward(self, trace: vf.Trace) -> float:
        """R(τ), the env's: the sum of the episode's step rewards (paper App. A.2)."""
        return float(self._episode(trace).get("R", float("nan")))

    @vf.metric
    async def task_score(self, trace: vf.Trace) -> float:
        """R_task of the final answer (P_no-answer = -1 when there was none)."""
        return float(self._episode(trace).get("task_score", -1.0))

    @vf.metric
    async def memory_f1(self, trace: vf.Trace) -> float:
        """F1 of the long-term store against the gold supporting facts at the end of the episode."""
        return float(self._episode(trace).get("memory_quality", {}).get("f1", 0.0))


class AgeMemTasksetConfig(vf.TasksetConfig):
    """Which AgeMem tasks load (``--env.taskset.*`` on verifiers' command line)."""

    env_id: str = "AgeMem-Synthetic-v0"
    """The Gymnasium id."""
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for ``gym.make`` (``data_path``, ``episode``, ``reward_weights``, ...)."""
    task_ids: list[str] | None = None
    """The tasks, in order; None: the suite's, in its order."""
    num_tasks: int | None = None
    """At most this many (after ``task_ids``); None: all."""
    material_seed: int = 0
    """The stage material's seed of every task."""


class AgeMemTaskset(vf.Taskset[AgeMemTask, AgeMemTasksetConfig]):
    """The suite's tasks as verifiers tasks, read lazily (verifiers' ``take(n)`` / ``-n`` reads only the first n).
    Each task has no prompt: :class:`AgeMemEnv` opens the conversation with the env's first context."""

    def load(self) -> Iterator[AgeMemTask]:
        config = self.config
        env = gym.make(config.env_id, **dict(config.env_kwargs))
        try:
            suite = env.unwrapped.suite  # type: ignore[attr-defined]
            ids = list(config.task_ids or suite.task_ids)
            for task_id in ids if config.num_tasks is None else ids[: config.num_tasks]:
                data = AgeMemData(
                    id=task_id,
                    name=task_id,
                    env_id=config.env_id,
                    env_kwargs=dict(config.env_kwargs),
                    task_id=task_id,
                    material_seed=config.material_seed,
                    answer=str(suite.get(task_id).answer),
                )
                yield AgeMemTask(data, config.task)
        finally:
            env.close()


# ---- the harness ----
class AgeMemHarnessConfig(vf.HarnessConfig):
    """The AgeMem chat harness (no knobs beyond verifiers' own; sampling is the run's ``--sampling.*``)."""

    id: str = PLUGIN_ID


class _AgeMemSession(vf.HarnessSession):
    """A segment is one model call on the messages the env hands over: the whole prompt, not a tail to append. The
    call goes through the rollout's interception endpoint, which applies the run's model and sampling settings and
    records the turn in the trace."""

    _client: Any = None

    async def _run(self, messages: Any) -> ProgramResult:
        if messages is None:  # a prompted task's opening segment: launch() says why there is none
            return await super()._run(None)
        from openai import AsyncOpenAI  # a dependency of verifiers
        from verifiers.v1.dialects.chat import message_to_wire

        if self._client is None:
            self._client = AsyncOpenAI(base_url=self.endpoint, api_key=self.secret)
        await self._client.chat.completions.create(
            model=self.ctx.model, messages=[message_to_wire(m) for m in messages]
        )
        return ProgramResult(exit_code=0, stdout="", stderr="")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        await super().close()


class AgeMemHarness(vf.Harness[AgeMemHarnessConfig]):
    """A tool-less chat loop that runs in-process: each segment sends the prompt it is given, whole, as one chat
    completion; with :class:`AgeMemEnv` that prompt is the env's edited context."""

    APPENDS_SYSTEM_PROMPT = True
    EXECUTES_CODE = False
    NEEDS_CONTAINER = False

    async def session(  # type: ignore[override]
        self,
        ctx: vf.ModelContext,
        trace: vf.Trace,
        runtime: vf.Runtime,
        endpoint: str,
        secret: str,
        mcp_urls: dict[str, str],
        data: vf.TaskData,
        tool_interception_url: str | None = None,
    ) -> vf.HarnessSession:
        return _AgeMemSession(self, ctx, trace, runtime, endpoint, secret, mcp_urls, data, tool_interception_url)

    async def launch(  # type: ignore[override]
        self,
        ctx: vf.ModelContext,
        trace: vf.Trace,
        runtime: vf.Runtime,
        endpoint: str,
        secret: str,
        mcp_urls: dict[str, str],
        data: vf.TaskData,
        tool_interception_url: str | None = None,
    ) -> ProgramResult:
        raise vf.HarnessError(
            f"harness {self.config.id!r} plays AgeMemEnv's turns, whose prompts the env supplies; it does not run a "
            "task's own prompt (run the agemem-verifiers taskset with its AgeMemEnv)"
        )


# ---- the env ----
class AgeMemEnvConfig(vf.EnvConfig):
    """The one ``agent`` seat (the policy), run in-process (the subprocess runtime: no sandbox is needed, the
    harness executes nothing)."""

    agent: vf.AgentConfig = vf.AgentConfig(runtime=SubprocessConfig())
    """The policy's seat: ``--env.agent.max-turns`` caps its turns (the env then ends the episode)."""


def _reply(segment: vf.Segment) -> str:
    """The model's text of the segment, exactly as sampled (``Segment.last_reply`` strips it)."""
    replies = [m.content for m in segment.messages if isinstance(m, vf.AssistantMessage)]
    return (replies[-1] or "") if replies else segment.last_reply


class AgeMemEnv(vf.Env[AgeMemEnvConfig]):
    """One AgeMem episode per task: the env is the user, and every turn's prompt is its edited context."""

    async def run(self, task: vf.Task, agents: vf.Agents) -> None:
        data = task.data
        if not isinstance(data, AgeMemData):
            raise TypeError(f"AgeMemEnv plays AgeMemData tasks (the agemem-verifiers taskset), got {type(data)}")
        env = gym.make(data.env_id, **dict(data.env_kwargs))
        try:
            _, info = env.reset(options={"task_id": data.task_id, "material_seed": data.material_seed})
            rewards: list[float] = []
            steps: list[dict[str, Any]] = []
            episode: dict[str, Any] | None = None
            async with agents.agent.interaction(task) as interaction:
                while episode is None:
                    segment = await interaction.turn(vf_messages(info["messages"]))
                    if segment.terminated:  # a limit or a failure ended the rollout: the env ends the episode
                        closing = close_episode(env, "rollout_stopped")
                        if closing.episode is not None:
                            rewards.append(closing.reward)
                        episode = closing.episode or {"R": closing.R}
                        break
                    _, reward, terminated, truncated, info = env.step(_reply(segment))
                    rewards.append(float(reward))
                    steps.append(
                        {
                            "stage": info["stage"],
                            "action_error": info["action_error"],
                            "reward_components": dict(info["reward_components"]),
                        }
                    )
                    if terminated or truncated:
                        episode = dict(info["episode"])
                # Scoring runs when the interaction closes, so the record goes on the trace before it does.
                interaction.trace.info["agemem"] = {"episode": episode, "rewards": rewards, "steps": steps}
        finally:
            env.close()


def env_config(**taskset: Any) -> AgeMemEnvConfig:
    """An :class:`AgeMemEnvConfig` over the ``agemem-verifiers`` taskset, for running in Python
    (``vf.load_environment(env_config(...))``); ``taskset`` holds :class:`AgeMemTasksetConfig` fields.

    >>> env_config(num_tasks=2).taskset.num_tasks
    2
    """
    return AgeMemEnvConfig(taskset=AgeMemTasksetConfig(id=PLUGIN_ID, **taskset))
