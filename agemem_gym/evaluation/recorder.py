"""Episode recordings: an action log of whole episodes, as versioned JSON Lines, for exact replay.

A recording (format :data:`FORMAT`, ``"agemem-episodes"``) holds one or more episodes. Each episode is a
``header`` line (format, version, env id and JSON-safe kwargs, seed, options, task id), one ``step`` line per
agent turn (the action text, the parsed calls, error codes, reward and its components, the store diff, and a hash
of the observation), and an ``end`` line (the final ``info["episode"]``). Observations are not stored: replay
regenerates them and checks their hashes. Lines are appended and flushed as the episode runs, so a crash loses at
most the line being written.

**Not to be confused with step records** (:mod:`agemem_gym.step_records`), the training format: one
self-contained sample per turn with its whole prompt (the messages the agent saw), reward, return and R(τ), which
trainers and adapters read. A recording is the compact, replayable log; :func:`export_sft` replays it into step
records (the prompts are the replayed env's), which the SFT warm start trains on.

>>> import gymnasium as gym, agemem_gym, tempfile, os
>>> from agemem_gym.evaluation.agents import OraclePolicy
>>> path = os.path.join(tempfile.mkdtemp(), "eps.jsonl")
>>> env = RecordEpisodes(gym.make("AgeMem-Synthetic-v0"), path)
>>> obs, info = env.reset(seed=0); policy = OraclePolicy(env.unwrapped); policy.reset(info)
>>> done = False
>>> while not done:
...     obs, r, term, trunc, info = env.step(policy.act(obs, info)); done = term or trunc
>>> env.close()
>>> replay(load_episodes(path)[0]).matches
True
>>> export_sft(load_episodes(path), os.path.join(os.path.dirname(path), "steps.jsonl")) > 0
True
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, SupportsFloat

import gymnasium as gym

from agemem_gym._locks import try_lock
from agemem_gym.errors import DataError, RecordingLockedError
from agemem_gym.jsonl import decode_line, json_line
from agemem_gym.protocol import parse_action
from agemem_gym.step_records import Act, trajectory_records, write_records
from agemem_gym.trust import check_env_id

__all__ = [
    "FORMAT",
    "VERSION",
    "RecordEpisodes",
    "RecordedEpisode",
    "ReplayReport",
    "export_sft",
    "load_episodes",
    "merge_recordings",
    "parse_episodes",
    "replay",
    "to_step_records",
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
    """Append every episode the wrapped env runs to a JSON Lines file.

    Each line is flushed as it is written, so a crash loses at most the line being written: :func:`load_episodes`
    reads a file cut at any byte, and a later recorder appending to it starts on a fresh line. One recorder
    writes a file at a time (an exclusive lock on it, taken when the first episode starts); a second one fails
    with :class:`~agemem_gym.errors.RecordingLockedError` before its env is reset, instead of interleaving lines.

    Args:
        env: An AgeMem env (made with ``gym.make`` so its id and kwargs are known to replay).
        path: The ``.jsonl`` file; created, or appended to.
    """

    def __init__(self, env: gym.Env[str, str], path: str | os.PathLike[str]) -> None:
        super().__init__(env)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = None
        self._t = 0

    def _open(self) -> IO[bytes]:
        """The file, opened for appending and locked; a line cut by an earlier crash is closed first."""
        if self._file is None:
            fh = self.path.open("a+b")
            try:
                try_lock(fh.fileno())
            except BlockingIOError:
                fh.close()
                raise RecordingLockedError(
                    f"{str(self.path)!r} is being written by another RecordEpisodes (it holds the file's lock); "
                    "close that one first, or record into another file"
                ) from None
            size = fh.seek(0, os.SEEK_END)
            if size:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":  # the last line was cut short: do not glue the next header onto it
                    fh.write(b"\n")
            self._file = fh
        return self._file

    def _write(self, record: Mapping[str, Any]) -> None:
        fh = self._open()
        fh.write(json_line(record).encode("utf-8"))  # valid UTF-8 even for actions with lone surrogates
        fh.flush()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        self._open()  # fail on a locked file before the env changes
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

    A recording cut at any byte by a crash loses at most the line being written: a last line cut short is
    skipped, and so is a cut line that a later recorder appended after (a header follows it, or was glued onto
    it by a version that did not start a fresh line); each skip warns. An episode whose end was cut off is
    returned with the steps that were written and ``end`` None.

    Raises:
        DataError: The file is not a recording of this format and version, a line in the middle is damaged, or
            its lines are out of order (the message names the line).
    """
    with Path(path).open("rb") as f:
        return parse_episodes(f, str(path))


def parse_episodes(lines: Iterable[bytes], name: str) -> list[RecordedEpisode]:
    """:func:`load_episodes` over the raw lines of a recording (``name`` is how messages cite the source)."""
    episodes: list[RecordedEpisode] = []
    for n, rec in _records(lines, name):
        kind = rec.get("type") if isinstance(rec, dict) else None
        if kind == "header":
            if rec.get("format") != FORMAT or rec.get("version") != VERSION:
                raise DataError(
                    f"{name}:{n}: expects format {FORMAT!r} version {VERSION}, "
                    f"got {rec.get('format')!r:.40} version {rec.get('version')!r:.40}"
                )
            episodes.append(RecordedEpisode(header=rec))
        elif kind in ("step", "end"):
            if not episodes or episodes[-1].end is not None:
                raise DataError(f"{name}:{n}: a {kind!r} record outside an episode (no header before it)")
            if kind == "step":
                episodes[-1].steps.append(rec)
            else:
                episodes[-1].end = rec
        else:
            raise DataError(f"{name}:{n}: unknown record type {kind!r:.40}; expects header, step or end")
    return episodes


_HEADER_START = b'{"type": "header"'


def merge_recordings(sources: Sequence[str | os.PathLike[str]], dest: str | os.PathLike[str]) -> int:
    """Append the episodes of ``sources`` to ``dest`` in the order of their reset seeds, byte for byte.

    Episodes run at once (``agemem-eval`` with a served model) are recorded one file per env; this puts them in one
    recording in task order (episode ``i`` of an evaluation resets with ``seed + i``; episodes without a seed keep
    their order, after the others). ``dest`` is locked while it is written, as by :class:`RecordEpisodes`.

    Returns:
        The number of episodes appended.

    Raises:
        DataError: A source is not a readable recording (see :func:`load_episodes`).
        RecordingLockedError: Another recorder is writing ``dest``.
    """
    chunks: list[tuple[tuple[int, int], int, list[bytes]]] = []
    for src in sources:
        episodes = iter(load_episodes(src))  # validates the file before anything is written
        with Path(src).open("rb") as f:
            for raw in f:
                if raw.startswith(_HEADER_START):
                    seed = next(episodes).header.get("seed")
                    key = (0, seed) if isinstance(seed, int) else (1, 0)
                    chunks.append((key, len(chunks), []))
                if chunks and raw.strip():
                    chunks[-1][2].append(raw if raw.endswith(b"\n") else raw + b"\n")
    chunks.sort(key=lambda c: (c[0], c[1]))
    dest_path = Path(dest)
    dest_path.parent.mkdir(parents=True, exist_ok=True)
    with dest_path.open("a+b") as fh:
        try:
            try_lock(fh.fileno())
        except BlockingIOError:
            raise RecordingLockedError(
                f"{str(dest_path)!r} is being written by another RecordEpisodes; close that one first"
            ) from None
        size = fh.seek(0, os.SEEK_END)
        if size:
            fh.seek(size - 1)
            if fh.read(1) != b"\n":
                fh.write(b"\n")
        for _, _, lines in chunks:
            fh.writelines(lines)
    return len(chunks)


def _records(lines: Iterable[bytes], name: str) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of every readable line, skipping (with a warning) the lines a crash cut short."""
    cut: tuple[int, str] | None = None  # an unreadable line, forgiven only if a header comes next
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            rec = decode_line(raw)
        except ValueError as err:
            if cut is not None:
                raise DataError(f"{name}:{cut[0]}: not JSON ({cut[1]}); the recording is damaged") from None
            glued = raw.rfind(_HEADER_START)
            if glued > 0:  # an older recorder appended a header straight onto the cut line
                try:
                    rec = decode_line(raw[glued:])
                except ValueError:
                    pass
                else:
                    _warn_cut(name, n)
                    yield n, rec
                    continue
            cut = (n, str(err)[:80])
            continue
        if cut is not None:
            if not (isinstance(rec, dict) and rec.get("type") == "header"):
                raise DataError(
                    f"{name}:{cut[0]}: not JSON ({cut[1]}); only the last line of a recording, or a line a new "
                    "episode was appended after, may be cut short"
                )
            _warn_cut(name, cut[0])
            cut = None
        yield n, rec
    if cut is not None:  # the last line was being written when the recorder stopped
        _warn_cut(name, cut[0])


def _warn_cut(name: str, n: int) -> None:
    warnings.warn(f"{name}:{n}: skipped a line cut short (the recorder stopped while writing it)", stacklevel=5)


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
) -> Iterator[tuple[str, dict[str, Any], SupportsFloat | None]]:
    """The env's states along the recording, lazily: ``(observation, info, None)`` after the recorded reset, then
    ``(observation, info, reward)`` after each recorded action (the next action is fed only when asked for)."""
    env = _make_env(episode, env, trust_remote_module)
    options = episode.header.get("options")
    obs, info = env.reset(seed=episode.header.get("seed"), options=options if isinstance(options, dict) else None)
    yield obs, info, None
    for rec in episode.steps:
        obs, reward, _, _, info = env.step(rec["action"])
        yield obs, info, reward


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
    states = _replayed(episode, env, trust_remote_module)
    obs, _, _ = next(states)
    if observation_hash(obs) != episode.header.get("obs_hash"):
        return ReplayReport(False, 0, 0, "the first observation differs (another task, data or configuration?)")
    for rec, (obs, _, reward) in zip(episode.steps, states):  # each record first: its state is after its action
        if reward != rec["reward"] or observation_hash(obs) != rec["obs_hash"]:
            return ReplayReport(
                False, rec["t"], rec["t"], f"step {rec['t']}: reward {reward!r} vs recorded {rec['reward']!r}"
            )
    return ReplayReport(True, len(episode.steps))


def to_step_records(
    episodes: Sequence[RecordedEpisode],
    *,
    env: gym.Env[str, str] | None = None,
    include_invalid: bool = False,
    tokenizer: Any = None,
    trust_remote_module: bool = False,
) -> Iterator[dict[str, Any]]:
    """Replay each episode into step records (:mod:`agemem_gym.step_records`), one per recorded agent turn.

    Each episode is first checked with :func:`replay`; then its actions are played again on the same env, so every
    record's prompt is the context the agent saw and its rewards are the env's. Episodes that start alike (the same
    task and reset options) form one group: ``group_id`` ``g{i}-{task_id}`` in order of first appearance,
    ``trajectory_id`` ``{group_id}/k{k}``. An episode whose recording stops before the env ended it (the recorder
    was closed mid-episode, or a crash cut it) is ended through the env (reason ``"recording_end"``): its last
    record is ``truncated`` and carries that closing reward, so R(τ) is the env's for the truncated episode.

    Args:
        episodes: Recorded episodes (typically an oracle's or a served model's).
        env: Env to replay on (default: the recorded id and kwargs).
        include_invalid: Also yield turns whose action was malformed (off: SFT should teach the format). The records
            that are left out keep their place: ``step`` then skips their index, and ``reward``, ``return_to_go``
            and ``episode_reward`` of the others are still the whole trajectory's.
        tokenizer: Adds ``prompt_ids``, ``response_ids`` and ``loss_mask``, as for
            :func:`~agemem_gym.step_records.collect_records`.
        trust_remote_module: As for :func:`replay`.

    Raises:
        DataError: An episode does not replay (another env, data or version); or, without ``env``, its recorded id
            is unusable or would import a module.
    """
    groups: dict[str, tuple[str, int]] = {}  # start key -> (group_id, trajectories so far)
    for i, ep in enumerate(episodes):
        options = ep.header.get("options")
        start = {
            "task_id": ep.header.get("task_id"),
            "material_seed": 0,
            **(options if isinstance(options, dict) else {}),
        }
        key = json.dumps(start, sort_keys=True, default=repr)
        group_id, k = groups.get(key, (f"g{len(groups)}-{start['task_id']}", 0))
        groups[key] = (group_id, k + 1)
        made = _make_env(ep, env, trust_remote_module)
        try:
            report = replay(ep, env=made)
            if not report.matches:
                raise DataError(
                    f"episode {i} of the recording (task {ep.header.get('task_id')!r:.60}) does not replay: "
                    f"{report.detail}; export it with env= the env it was recorded on"
                )
            records = trajectory_records(
                made,
                _recorded_actions(ep),
                seed=ep.header.get("seed"),
                options=options if isinstance(options, dict) else None,
                group_id=group_id,
                trajectory_id=f"{group_id}/k{k}",
                tokenizer=tokenizer,
                max_turns=len(ep.steps) + 1,
                end_reason="recording_end",
            )
        finally:
            if made is not env:
                made.close()
        yield from (r for r in records if include_invalid or r["action_error"] is None)


def _recorded_actions(episode: RecordedEpisode) -> Act:
    """An actor that hands out the episode's recorded actions in order, then None."""
    actions = iter(episode.actions)
    return lambda observation, info: next(actions, None)


def export_sft(
    episodes: Sequence[RecordedEpisode],
    out_path: str | os.PathLike[str],
    *,
    env: gym.Env[str, str] | None = None,
    include_invalid: bool = False,
    trust_remote_module: bool = False,
) -> int:
    """Write the step records of ``episodes`` (:func:`to_step_records`) to ``out_path``; returns how many.

    The file is written atomically (:func:`~agemem_gym.step_records.write_records`) and is what
    ``python -m agemem_gym.trainers.sft --data out_path`` trains on (the trainer also reads a recording directly).

    Args:
        episodes: Recorded episodes (typically an oracle's).
        out_path: Destination ``.jsonl`` (overwritten).
        env: Env to replay on (default: the recorded id and kwargs).
        include_invalid: Also export turns whose action was malformed (off: SFT should teach the format).
        trust_remote_module: As for :func:`replay`.

    Raises:
        DataError: As for :func:`to_step_records`; nothing is written then.
    """
    records = to_step_records(
        episodes, env=env, include_invalid=include_invalid, trust_remote_module=trust_remote_module
    )
    return write_records(records, out_path)
