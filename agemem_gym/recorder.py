"""Record episodes as versioned JSON Lines, load them back, replay them exactly, and export SFT pairs.

A file holds one or more episodes. Each episode is a ``header`` line (format, version, env id and JSON-safe
kwargs, seed, options, task id), one ``step`` line per agent turn (the action text, the parsed calls, error
codes, reward and its components, the store diff, and a hash of the observation), and an ``end`` line (the
final ``info["episode"]``). Observations are not stored: replay regenerates them and checks their hashes.

>>> import gymnasium as gym, agemem_gym, tempfile, os
>>> from agemem_gym.agents import OraclePolicy
>>> path = os.path.join(tempfile.mkdtemp(), "eps.jsonl")
>>> env = RecordEpisodes(gym.make("AgeMem-Synthetic-v0"), path)
>>> obs, info = env.reset(seed=0); policy = OraclePolicy(env.unwrapped); policy.reset(info)
>>> done = False
>>> while not done:
...     obs, r, term, trunc, info = env.step(policy.act(obs, info)); done = term or trunc
>>> env.close()
>>> replay(load_episodes(path)[0]).matches
True
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import gymnasium as gym

from agemem_gym.errors import DataError
from agemem_gym.jsonl import json_line
from agemem_gym.protocol import parse_action
from agemem_gym.trust import check_env_id

__all__ = [
    "FORMAT",
    "VERSION",
    "RecordEpisodes",
    "RecordedEpisode",
    "ReplayReport",
    "export_sft",
    "load_episodes",
    "replay",
]

FORMAT = "agemem-episodes"
VERSION = 1


def observation_hash(observation: str) -> str:
    """A short stable digest of an observation (replay compares these)."""
    return hashlib.sha256(observation.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _json_safe(value: Any) -> Any:
    """``value`` if it survives a JSON round trip unchanged, else its repr (callables, tokenizers, ...)."""
    try:
        return value if json.loads(json.dumps(value)) == value else repr(value)
    except (TypeError, ValueError):
        return repr(value)


def _store_diff(tool_results: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    diff: dict[str, list[str]] = {"added": [], "updated": [], "deleted": []}
    for r in tool_results:
        if not r.get("ok"):
            continue
        data = r.get("data", {})
        if r["name"] == "Add_memory" and data.get("action") == "added":
            diff["added"].append(data["id"])
        elif r["name"] == "Update_memory":
            diff["updated"].append(data["id"])
        elif r["name"] == "Delete_memory" and data.get("deleted"):
            diff["deleted"].append(data["id"])
    return diff


class RecordEpisodes(gym.Wrapper[str, str, str, str]):
    """Append every episode the wrapped env runs to a JSON Lines file (flushed after each line, so a crash
    loses at most the line being written).

    Args:
        env: An AgeMem env (made with ``gym.make`` so its id and kwargs are known to replay).
        path: The ``.jsonl`` file; created, or appended to.
    """

    def __init__(self, env: gym.Env[str, str], path: str | os.PathLike[str]) -> None:
        super().__init__(env)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = None
        self._t = 0

    def _write(self, record: Mapping[str, Any]) -> None:
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(json_line(record))  # valid UTF-8 even for actions with lone surrogates
        self._file.flush()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        spec = self.env.spec
        self._t = 0
        self._write(
            {
                "type": "header",
                "format": FORMAT,
                "version": VERSION,
                "env_id": spec.id if spec is not None else None,
                "env_kwargs": {k: _json_safe(v) for k, v in (spec.kwargs if spec is not None else {}).items()},
                "seed": seed,
                "options": _json_safe(options),
                "task_id": info["task_id"],
                "obs_hash": observation_hash(obs),
            }
        )
        return obs, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._t += 1
        parsed = parse_action(action, getattr(self.env.unwrapped, "protocol", None))
        self._write(
            {
                "type": "step",
                "t": self._t,
                "stage": info["stage"],
                "action": action if isinstance(action, str) else repr(action),
                "calls": [c.to_dict() for c in parsed.tool_calls],
                "action_error": info["action_error"],
                "call_errors": info["call_errors"],
                "tool_results": info["tool_results"],
                "store_diff": _store_diff(info["tool_results"]),
                "reward": float(reward),
                "reward_components": info["reward_components"],
                "terminated": terminated,
                "truncated": truncated,
                "obs_hash": observation_hash(obs),
            }
        )
        if terminated or truncated:
            self._write({"type": "end", "episode": info["episode"]})
        return obs, float(reward), terminated, truncated, info

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


@dataclass
class RecordedEpisode:
    """One recorded episode: its header, steps and (if it finished) end record."""

    header: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None

    @property
    def actions(self) -> list[str]:
        """The agent's actions, in order."""
        return [s["action"] for s in self.steps]


def load_episodes(path: str | os.PathLike[str]) -> list[RecordedEpisode]:
    """Read every episode in a recording, validating format, version and line order.

    Raises:
        DataError: The file is not a recording of this format and version, or its lines are out of order (the
            message names the line).
    """
    episodes: list[RecordedEpisode] = []
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{n}: not JSON ({err.msg}); was the file cut short mid-line?") from None
            kind = rec.get("type") if isinstance(rec, dict) else None
            if kind == "header":
                if rec.get("format") != FORMAT or rec.get("version") != VERSION:
                    raise DataError(
                        f"{path}:{n}: expects format {FORMAT!r} version {VERSION}, "
                        f"got {rec.get('format')!r} version {rec.get('version')!r}"
                    )
                episodes.append(RecordedEpisode(header=rec))
            elif kind in ("step", "end"):
                if not episodes or episodes[-1].end is not None:
                    raise DataError(f"{path}:{n}: a {kind!r} record outside an episode (no header before it)")
                if kind == "step":
                    episodes[-1].steps.append(rec)
                else:
                    episodes[-1].end = rec
            else:
                raise DataError(f"{path}:{n}: unknown record type {kind!r}; expects header, step or end")
    return episodes


@dataclass
class ReplayReport:
    """Whether a replay reproduced the recording, and where it first diverged."""

    matches: bool
    steps: int
    first_mismatch: int | None = None
    detail: str = ""


def _make_env(episode: RecordedEpisode, env: gym.Env[str, str] | None, trust_remote_module: bool) -> gym.Env[str, str]:
    """``env``, or ``gym.make`` of the recorded id and kwargs when that imports no new module (see
    :func:`~agemem_gym.trust.check_env_id`)."""
    if env is not None:
        return env
    env_id = check_env_id(episode.header.get("env_id"), source="the recording", trust_remote_module=trust_remote_module)
    kwargs = episode.header.get("env_kwargs", {})
    if not isinstance(kwargs, dict):
        raise DataError(f"the recording's env_kwargs must be a JSON object, got {kwargs!r:.80}; pass env= to replay it")
    return gym.make(env_id, **kwargs)


def _replayed(
    episode: RecordedEpisode, env: gym.Env[str, str] | None, trust_remote_module: bool = False
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Yield (observation, info) before each recorded step, with the step record, feeding its action."""
    env = _make_env(episode, env, trust_remote_module)
    options = episode.header.get("options")
    obs, info = env.reset(seed=episode.header.get("seed"), options=options if isinstance(options, dict) else None)
    for rec in episode.steps:
        yield obs, info, rec
        obs, _, _, _, info = env.step(rec["action"])


def replay(
    episode: RecordedEpisode, *, env: gym.Env[str, str] | None = None, trust_remote_module: bool = False
) -> ReplayReport:
    """Re-run a recorded episode and compare every reward and observation hash.

    Args:
        episode: From :func:`load_episodes`.
        env: The env to replay on; by default ``gym.make`` of the recorded id and kwargs.
        trust_remote_module: Let a recorded ``module:id`` import its module. Off, the recorded id must be
            registered already (or its module imported): a file cannot make this process run code.

    Raises:
        DataError: Without ``env``, the recorded id is unusable or would import a module (see above).
    """
    env = _make_env(episode, env, trust_remote_module)
    options = episode.header.get("options")
    obs, info = env.reset(seed=episode.header.get("seed"), options=options if isinstance(options, dict) else None)
    if observation_hash(obs) != episode.header.get("obs_hash"):
        return ReplayReport(False, 0, 0, "the first observation differs (another task, data or configuration?)")
    for rec in episode.steps:
        obs, reward, _, _, info = env.step(rec["action"])
        if reward != rec["reward"] or observation_hash(obs) != rec["obs_hash"]:
            return ReplayReport(
                False, rec["t"], rec["t"], f"step {rec['t']}: reward {reward!r} vs recorded {rec['reward']!r}"
            )
    return ReplayReport(True, len(episode.steps))


def export_sft(
    episodes: Sequence[RecordedEpisode],
    out_path: str | os.PathLike[str],
    *,
    env: gym.Env[str, str] | None = None,
    include_invalid: bool = False,
    trust_remote_module: bool = False,
) -> int:
    """Write ``{"messages": [...], "tools": [...], "response": "..."}`` JSON Lines, one per agent turn, by
    replaying each episode (the prompt messages are those the agent saw). Returns the number of pairs written.

    Args:
        episodes: Recorded episodes (typically an oracle's).
        out_path: Destination ``.jsonl`` (overwritten).
        env: Env to replay on (default: the recorded id and kwargs).
        include_invalid: Also export turns whose action was malformed (off: SFT should teach the format).
        trust_remote_module: As for :func:`replay`.
    """
    n = 0
    tmp = Path(f"{out_path}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for ep in episodes:
            for _, info, rec in _replayed(ep, env, trust_remote_module):
                if rec["action_error"] is not None and not include_invalid:
                    continue
                pair = {"messages": info["messages"], "tools": info["tools"], "response": rec["action"]}
                f.write(json_line(pair))
                n += 1
    os.replace(tmp, out_path)
    return n
