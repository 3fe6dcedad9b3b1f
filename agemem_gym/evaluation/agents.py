"""Scripted policies that need no model: baselines for evaluation, data for SFT warm starts, fakes for tests.

Every policy has ``reset(info)`` and ``act(observation, info) -> str`` and emits the protocol's text format.

- :class:`OraclePolicy` (privileged: reads the env's task) stores exactly the supporting facts, consolidates
  them (one UPDATE, one DELETE), filters every distractor, retrieves before answering, and answers with the gold
  answer (``reader="gold"``) or with the shared heuristic reader.
- :class:`NoMemoryPolicy` never calls a tool and answers the question from whatever is left in its context.
- :class:`RagPolicy` stores every paragraph it is told and retrieves with every user message, never editing its
  context (the paper's "-RAG" ablation, §4.3).
- :class:`RandomPolicy` picks random tools with random arguments, random answers and sometimes broken markup.

>>> import gymnasium as gym, agemem_gym
>>> env = gym.make("AgeMem-Synthetic-v0")
>>> obs, info = env.reset(seed=0)
>>> policy = OraclePolicy(env.unwrapped)
>>> policy.reset(info)
>>> policy.act(obs, info).startswith("<think>")
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from agemem_gym._validate import is_int
from agemem_gym.errors import ConfigError
from agemem_gym.text import content_words, split_sentences

__all__ = [
    "POLICIES",
    "POLICY_PLUGINS",
    "AsyncEpisode",
    "ConcurrentPolicy",
    "NoMemoryPolicy",
    "OraclePolicy",
    "Policy",
    "RagPolicy",
    "RandomPolicy",
    "TokenUsage",
    "heuristic_answer",
    "make_policy",
]


class Policy(Protocol):
    """What the evaluation loop and the SFT collector need from a policy."""

    name: str

    def reset(self, info: Mapping[str, Any]) -> None: ...

    def act(self, observation: str, info: Mapping[str, Any]) -> str: ...


@dataclass
class TokenUsage:
    """Tokens that a served model says it used (the ``usage`` of its responses), summed over one episode.

    Policies that talk to a server expose the current episode's usage as ``policy.usage`` (and an
    :class:`AsyncEpisode` as ``episode.usage``); the evaluation table turns it into prompt and completion tokens
    per turn. Scripted policies have none, and their columns read n/a: no count is invented for them.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    responses: int = 0
    """Responses received (one per agent turn; failed attempts that were retried are not counted)."""
    unreported: int = 0
    """Responses that carried no usable ``usage``; while any did, the episode's totals are unknown."""

    def add(self, prompt_tokens: object, completion_tokens: object) -> None:
        """Count one response; a missing or malformed count (server text is untrusted) makes it unreported."""
        self.responses += 1
        ok = all(is_int(n) and n >= 0 for n in (prompt_tokens, completion_tokens))  # type: ignore[operator]
        if not ok:
            self.unreported += 1
            return
        self.prompt_tokens += prompt_tokens  # type: ignore[operator]
        self.completion_tokens += completion_tokens  # type: ignore[operator]

    @property
    def complete(self) -> bool:
        """Every response reported its usage (and there was at least one)."""
        return self.responses > 0 and self.unreported == 0


class AsyncEpisode(Protocol):
    """One episode of a :class:`ConcurrentPolicy`: its own state, so many can be in flight at once."""

    usage: TokenUsage | None

    def reset(self, info: Mapping[str, Any]) -> None: ...

    async def act(self, observation: str, info: Mapping[str, Any]) -> str: ...


class ConcurrentPolicy(Protocol):
    """A policy whose turns are awaited (a served model), so that ``concurrency`` episodes can run at once.

    :func:`agemem_gym.evaluation.evaluate_async` asks it for one :class:`AsyncEpisode` per task, by the task's
    position, so that anything an episode draws depends on that position alone, not on which episode finished first.
    """

    name: str
    concurrency: int

    def episode(self, index: int) -> AsyncEpisode: ...

    async def aclose(self) -> None: ...


def tool_call(*calls: tuple[str, Mapping[str, Any]], think: str = "I will use my memory tools.") -> str:
    """Format calls in the protocol's text form."""
    body = json.dumps([{"name": n, "arguments": dict(a)} for n, a in calls], ensure_ascii=False)
    return f"<think>{think}</think><tool_call>{body}</tool_call>"


def answer(text: str, think: str = "I can reply now.") -> str:
    """Format an answer in the protocol's text form."""
    return f"<think>{think}</think><answer>{text}</answer>"


def _last(info: Mapping[str, Any], role: str) -> str:
    for m in reversed(info.get("messages", [])):
        if m.get("role") == role:
            return str(m.get("content", ""))
    return ""


def _question(info: Mapping[str, Any]) -> str:
    text = _last(info, "user")
    m = re.search(r"question for you:\s*(.+?)(?:\nAnswer with a short phrase\.)?$", text, re.DOTALL)
    return m.group(1).strip() if m else text


# ---- a deterministic heuristic reader shared by the baselines ----

_YES_NO = re.compile(r"^(is|are|was|were|do|does|did|has|have|had|can|could|will|would)\b", re.IGNORECASE)
_NUMERIC_Q = re.compile(r"\b(when|what year|which year|how many|how much|how old|what age)\b", re.IGNORECASE)
_NUMBER = re.compile(r"\b\d[\d,.]*\b")
_NAME = re.compile(r"\b[A-Z][\w'’-]*(?:\s+(?:of|the|de|von|van)?\s*[A-Z][\w'’-]*)*")
_OPTIONS = re.compile(r",?\s*([^,?]+?)\s+or\s+([^,?]+?)\?*$")


def _names(sentence: str, exclude: set[str]) -> list[str]:
    """Capitalised runs of ``sentence`` (names) whose words are not all in ``exclude``."""
    return [n.strip() for n in _NAME.findall(sentence) if not set(content_words(n)) <= exclude]


def heuristic_answer(question: str, texts: Sequence[str]) -> str:
    """A deliberately simple extractive two-hop reader: the baselines share it, so their task scores differ only
    by what their memory management left them to read.

    Yes/no questions get "yes"; "X or Y" questions get the option mentioned closest to the question's other
    words. Otherwise the sentence that best overlaps the question is the first hop; when it names an entity the
    question does not (a bridge, as in "the town where Nevmar Industries is headquartered"), the best sentence
    about that entity is the second hop. The answer is a number from the last hop (for when/how-many questions)
    or a name in it that is neither in the question nor the bridge.

    >>> heuristic_answer("In which province is the town where Nevmar Industries is headquartered?",
    ...     ["Nevmar Industries is a company headquartered in Kasdane.", "Kasdane is a town in Mabdrick."])
    'Mabdrick'
    """
    q_words = set(content_words(question))
    if _YES_NO.match(question.strip()):
        return "yes"
    sentences = [s for t in texts for s in split_sentences(t)]
    opts = _OPTIONS.search(question)
    if opts:
        a, b = (o.strip() for o in opts.groups())
        a = re.sub(r"^(?:which|who|what)\b.*?,\s*", "", a, flags=re.IGNORECASE)

        def support(option: str) -> float:
            ow = set(content_words(option))
            rest = q_words - ow - set(content_words(a)) - set(content_words(b))
            return max((len(rest & set(content_words(s))) for s in sentences if ow & set(content_words(s))), default=0)

        return a if support(a) >= support(b) else b
    if not sentences:
        return "unknown"

    def overlap(s: str) -> tuple[int, int]:
        return len(q_words & set(content_words(s))), -len(s)

    first = max(sentences, key=overlap)
    hop, known = first, set(q_words)
    bridges = _names(first, q_words)
    if bridges:
        bridge = set(content_words(bridges[0]))
        about = [s for s in sentences if s != first and bridge <= set(content_words(s))]
        if about:
            hop = max(about, key=overlap)
            known |= bridge
    numeric = bool(_NUMERIC_Q.search(question))
    for sentence in (hop, first) if hop is not first else (first,):
        nums = _NUMBER.findall(sentence) if numeric else []
        if nums:
            return nums[0].rstrip(".,")
        names = _names(sentence, known)
        if names and not numeric:
            return names[0]
    return first.split(",")[0][:60]


# ---- the policies ----


class NoMemoryPolicy:
    """Never touches memory; answers the question from its (reset, distractor-filled) context."""

    name = "no_memory"

    def reset(self, info: Mapping[str, Any]) -> None:
        pass

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        if info.get("stage") != 3:
            return answer("Thanks for sharing!")
        texts = [m["content"] for m in info.get("messages", [])[1:-1]]
        return answer(heuristic_answer(_question(info), texts), "I answer from what I can see.")


class RagPolicy:
    """Stores every paragraph shared with it and retrieves with every user message; never edits its context."""

    name = "rag"

    def __init__(self, top_k: int = 3) -> None:
        self.top_k = top_k

    def reset(self, info: Mapping[str, Any]) -> None:
        pass

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        messages = info.get("messages", [])
        if messages and messages[-1].get("role") == "user":
            user = messages[-1]["content"]
            if info.get("stage") == 3:
                return tool_call(("Retrieve_memory", {"query": _question(info), "top_k": self.top_k}))
            paragraphs = [p.split("\n", 1)[-1] for p in user.split("\n\n")[:-1]]
            calls = [("Add_memory", {"content": p}) for p in paragraphs if p.strip()]
            calls.append(("Retrieve_memory", {"query": user[:500], "top_k": self.top_k}))
            return tool_call(*calls[:8])
        if info.get("stage") == 3:
            texts = [m["content"] for m in messages[1:]]
            return answer(
                heuristic_answer(_question({"messages": [m for m in messages if m["role"] == "user"]}), texts)
            )
        return answer("Thanks for sharing!")


class OraclePolicy:
    """Privileged scripted agent: ideal memory management on the env's current task.

    Args:
        env: The unwrapped :class:`~agemem_gym.env.AgeMemEnv` (the policy reads ``env.task``).
        reader: ``"gold"`` answers with the gold answer (the upper bound of every term); ``"heuristic"`` answers
            with :func:`heuristic_answer` over the retrieved memories (isolates memory management from reading).
    """

    name = "oracle"

    def __init__(self, env: Any, *, reader: Literal["gold", "heuristic"] = "gold") -> None:
        if reader not in ("gold", "heuristic"):
            raise ConfigError(f"'reader' must be 'gold' or 'heuristic', got {reader!r}")
        self.env = env
        self.reader = reader
        self._ids: list[str] = []
        self._consolidated = False
        self._pending: list[str] = []

    def reset(self, info: Mapping[str, Any]) -> None:
        self._ids, self._consolidated, self._pending = [], False, []

    def _new_ids(self, info: Mapping[str, Any]) -> None:
        for r in info.get("tool_results", []):
            if r["name"] == "Add_memory" and r["ok"] and r["data"].get("action") == "added":
                self._ids.append(r["data"]["id"])
            if r["name"] == "Delete_memory" and r["ok"] and r["data"].get("deleted"):
                self._ids.remove(r["data"]["id"])

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        self._new_ids(info)
        task = self.env.task
        stage = info.get("stage")
        messages = info.get("messages", [])
        last = messages[-1] if messages else {}
        fresh_user = last.get("role") == "user"
        if stage == 1:
            if fresh_user:
                facts = [f for f in task.supporting_facts if f.text in last["content"]]
                by_title: dict[str, list[str]] = {}
                for f in facts:
                    by_title.setdefault(f.title, []).append(f.text)
                calls: list[tuple[str, Mapping[str, Any]]] = [
                    ("Add_memory", {"content": " ".join(t), "metadata": {"title": k}}) for k, t in by_title.items()
                ]
                if calls:
                    return tool_call(*calls, think="This message holds facts worth keeping.")
            if self.env.is_last_turn_of_stage and len(self._ids) > 1 and not self._consolidated:
                self._consolidated = True
                joined = " ".join(f.text for f in task.supporting_facts)
                first, *rest = self._ids
                calls = [("Update_memory", {"memory_id": first, "content": joined})]
                calls += [("Delete_memory", {"memory_id": mid, "confirmation": True}) for mid in rest]
                return tool_call(*calls, think="I consolidate the related facts into one memory.")
            return answer("Thanks for sharing!")
        if stage == 2:
            if fresh_user:
                titles = [p.title for p in self.env.shared_paragraphs]
                if titles:
                    calls = [("Filter_context", {"criteria": t}) for t in titles]
                    return tool_call(*calls, think="This is unrelated to what I keep; I drop it from my context.")
            return answer("Noted.")
        if fresh_user:
            return tool_call(
                ("Retrieve_memory", {"query": task.question, "top_k": max(1, min(10, len(self._ids)))}),
                think="I retrieve what I stored before answering.",
            )
        if self.reader == "gold":
            return answer(task.answer, "My memories answer the question.")
        retrieved = [h["content"] for r in info.get("tool_results", []) for h in r["data"].get("hits", [])]
        return answer(heuristic_answer(task.question, retrieved), "My memories answer the question.")


class RandomPolicy:
    """Uniformly random tools, arguments and answers, with some malformed turns (a floor for every term)."""

    name = "random"

    def __init__(self, seed: int = 0, malformed: float = 0.1) -> None:
        self.rng = np.random.default_rng(seed)
        self.malformed = malformed

    def reset(self, info: Mapping[str, Any]) -> None:
        pass

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        rng = self.rng
        words = observation.split()
        phrase = " ".join(words[int(i)] for i in rng.integers(0, max(1, len(words)), size=6)) if words else "x"
        ids = [f"m_{int(i):04x}" for i in rng.integers(1, 6, size=1)]
        r = rng.random()
        if r < self.malformed:
            return ["I think so.", "<tool_call>[{", "<answer></answer>", '<tool_call>{"name": "Nope"}</tool_call>'][
                int(rng.integers(4))
            ]
        choice = int(rng.integers(7))
        if choice == 0:
            return answer(phrase)
        if choice == 1:
            return tool_call(("Add_memory", {"content": phrase}))
        if choice == 2:
            return tool_call(("Retrieve_memory", {"query": phrase, "top_k": int(rng.integers(1, 6))}))
        if choice == 3:
            return tool_call(("Update_memory", {"memory_id": ids[0], "content": phrase}))
        if choice == 4:
            return tool_call(("Delete_memory", {"memory_id": ids[0], "confirmation": bool(rng.random() < 0.8)}))
        if choice == 5:
            return tool_call(("Summary_context", {"span": str(int(rng.integers(1, 5)))}))
        return tool_call(("Filter_context", {"criteria": phrase}))


POLICIES: tuple[str, ...] = ("oracle", "oracle_heuristic", "rag", "no_memory", "random")
POLICY_PLUGINS = "agemem_gym.policies"
"""Entry-point group of policy factories ``(spec, env, *, seed) -> Policy``, named as in ``make_policy("name:spec")``.

This package registers ``model`` (:mod:`agemem_gym.trainers.eval_policy`: a checkpoint or a transformers model) and
``openai`` (:mod:`agemem_gym.evaluation.openai_policy`: any OpenAI-compatible chat endpoint); other packages may register their
own in their ``pyproject.toml``::

    [project.entry-points."agemem_gym.policies"]
    mypolicy = "mypackage.policies:from_spec"
"""


def _plugin_policy(name: str, env: Any, seed: int) -> Policy:
    """``"plugin:spec"``: the factory registered under ``plugin`` in :data:`POLICY_PLUGINS`, called with ``spec``."""
    from importlib.metadata import entry_points

    plugin, _, spec = name.partition(":")
    found = {ep.name: ep for ep in entry_points(group=POLICY_PLUGINS)}
    if plugin not in found:
        known = ", ".join(sorted(found)) or "none installed"
        raise ConfigError(
            f"unknown policy plugin {plugin!r} in {name!r}; registered plugins: {known} (agemem-gym registers 'model' "
            "and 'openai'; reinstall the package if they are missing)"
        )
    policy: Policy = found[plugin].load()(spec, env, seed=seed)
    return policy


def make_policy(name: str, env: Any = None, *, seed: int = 0) -> Policy:
    """A scripted policy by name (see :data:`POLICIES`), or ``"plugin:spec"`` from :data:`POLICY_PLUGINS`
    (``"model:runs/<run>/checkpoint.pt"`` plays a trained checkpoint, ``"openai:http://host:8000/v1?model=NAME"`` a
    served model). The oracles need the unwrapped env."""
    if ":" in name:
        return _plugin_policy(name, env, seed)
    if name in ("oracle", "oracle_heuristic"):
        if env is None:
            raise ConfigError(f"policy {name!r} reads the env's task; pass env=env.unwrapped")
        policy: Policy = OraclePolicy(env, reader="gold" if name == "oracle" else "heuristic")
        policy.name = name
        return policy
    if name == "rag":
        return RagPolicy()
    if name == "no_memory":
        return NoMemoryPolicy()
    if name == "random":
        return RandomPolicy(seed)
    raise ConfigError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}")
