"""``agemem-serve`` against the in-process env: steps/s and p50/p99 step latency at 1, 8 and 32 concurrent sessions.

python -m benchmarks.serve                      # writes benchmarks/results/serve.jsonl and prints a table
python -m benchmarks.serve --steps-per-session 40 --concurrency 1 8

The oracle's action texts are recorded once per task in-process (so the timed loops run no policy). Each cell then
replays them in K threads, each thread with its own session: ``client.step`` over OpenEnv's own WebSocket client
to a server subprocess, or ``env.step`` on its own in-process env (the baseline, same harness, same actions).
Only step calls are timed (resets count in the wall time but not as steps). Every loop is bounded by a step quota
and a time budget; the server is killed at the end whatever happens. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import agemem_gym  # noqa: F401  (registers the env ids)
from agemem_gym.evaluation.agents import OraclePolicy
from benchmarks.machine import machine_info
from benchmarks.records import Record, Results, write_results
from benchmarks.render import Col, Table, table

__all__ = ["TABLE", "main", "record_episodes", "records", "run_cell"]

ENV_ID = "AgeMem-Synthetic-v0"
ENV_KWARGS: dict[str, Any] = {"n_tasks": 64}
RESULTS = Path(__file__).parent / "results" / "serve.jsonl"

Episode = tuple[int, str, list[str]]  # (seed, task id, action texts)


def record_episodes(n: int) -> list[Episode]:
    """The oracle's action texts for ``n`` tasks, recorded in-process (replaying them reproduces each episode)."""
    env = gym.make(ENV_ID, **ENV_KWARGS)
    episodes: list[Episode] = []
    for i in range(n):
        task_id = f"syn-medium-s0-{i:06d}"
        obs, info = env.reset(seed=i, options={"task_id": task_id})
        oracle = OraclePolicy(env.unwrapped)
        oracle.reset(info)
        actions: list[str] = []
        for _ in range(500):
            action = oracle.act(obs, info)
            actions.append(action)
            obs, _r, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        episodes.append((i, task_id, actions))
    return episodes


class _InProcess:
    """The baseline session: an env in this process, with the client's reset/step surface."""

    def __init__(self) -> None:
        self.env = gym.make(ENV_ID, **ENV_KWARGS)

    def reset(self, seed: int, task_id: str) -> None:
        self.env.reset(seed=seed, options={"task_id": task_id})

    def step(self, text: str) -> None:
        self.env.step(text)

    def close(self) -> None:
        self.env.close()


class _Remote:
    """A session on the server through OpenEnv's own sync client."""

    def __init__(self, url: str) -> None:
        from openenv.core import GenericEnvClient

        self.client = GenericEnvClient(base_url=url, message_timeout_s=120).sync()
        self.client.connect()

    def reset(self, seed: int, task_id: str) -> None:
        self.client.reset(seed=seed, task_id=task_id)

    def step(self, text: str) -> None:
        self.client.step({"text": text})

    def close(self) -> None:
        self.client.close()


def _session(
    make: Callable[[], Any], episodes: Sequence[Episode], offset: int, quota: int, deadline: float
) -> list[float]:
    """Replay episodes (starting at ``offset``) until ``quota`` steps or the deadline; returns each step's seconds."""
    session = make()
    latencies: list[float] = []
    try:
        k = offset
        while len(latencies) < quota and time.monotonic() < deadline:
            seed, task_id, actions = episodes[k % len(episodes)]
            k += 1
            session.reset(seed, task_id)
            for text in actions:
                if len(latencies) >= quota or time.monotonic() >= deadline:
                    break
                t0 = time.perf_counter()
                session.step(text)
                latencies.append(time.perf_counter() - t0)
    finally:
        session.close()
    return latencies


def run_cell(
    make: Callable[[], Any], episodes: Sequence[Episode], k: int, quota: int, budget_s: float
) -> dict[str, Any]:
    """K concurrent sessions, each ``quota`` steps at most, within ``budget_s``: steps/s and latency percentiles."""
    deadline = time.monotonic() + budget_s
    t0 = time.perf_counter()
    with ThreadPoolExecutor(k) as pool:
        per = list(pool.map(lambda i: _session(make, episodes, i * 3, quota, deadline), range(k)))
    wall = time.perf_counter() - t0
    lat = np.concatenate([np.asarray(p) for p in per]) if per else np.zeros(0)
    return {
        "sessions": k,
        "steps": int(lat.size),
        "wall_s": wall,
        "steps_per_s": lat.size / wall if wall > 0 else 0.0,
        "p50_ms": float(np.percentile(lat, 50) * 1e3) if lat.size else None,
        "p99_ms": float(np.percentile(lat, 99) * 1e3) if lat.size else None,
        "hit_time_budget": time.monotonic() >= deadline,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(max_sessions: int) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "agemem_gym.serve", "--env-id", ENV_ID, "--port", str(port)]
    cmd += ["--env-kwargs", json.dumps(ENV_KWARGS), "--max-sessions", str(max_sessions)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, f"http://127.0.0.1:{port}"
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("agemem-serve did not come up within 120 s")


def records(rows: Sequence[dict[str, Any]]) -> list[Record]:
    """:func:`run_cell` rows as records of benchmark ``"serve"``: steps/s (served against in-process at the same
    concurrency), p50 and p99 step latency, and whether the cell ran out of its time budget."""
    local = {r["sessions"]: r["steps_per_s"] for r in rows if r["mode"] == "in_process"}
    out = []
    for r in rows:
        at = {"env_id": ENV_ID, "mode": r["mode"], "sessions": r["sessions"]}
        base = local.get(r["sessions"]) if r["mode"] == "served" else None
        out.append(
            Record("serve", "steps_per_s", r["steps_per_s"], "steps/s", at, repeats=r["steps"],
                   baseline="in_process" if base else None, baseline_value=base,
                   ratio=r["steps_per_s"] / base if base else None)
        )  # fmt: skip
        out += [Record("serve", m, r[m], "ms", at, repeats=r["steps"]) for m in ("p50_ms", "p99_ms")]
        out.append(Record("serve", "hit_time_budget", float(r["hit_time_budget"]), "", at))
    return out


TABLE = Table(
    ("sessions", "mode"),
    (
        Col("steps", {"metric": "steps_per_s"}, "repeats", "int"),
        Col("steps/s", {"metric": "steps_per_s"}),
        Col("served / in-process", {"metric": "steps_per_s"}, "ratio", "ratio"),
        Col("p50 ms", {"metric": "p50_ms"}),
        Col("p99 ms", {"metric": "p99_ms"}),
        Col("hit the time budget", {"metric": "hit_time_budget"}),
    ),
    {"benchmark": "serve"},
)


def main(argv: Sequence[str] | None = None) -> Results:
    """Run every cell (in-process and served, interleaved by concurrency) and write the records (JSON Lines)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--steps-per-session", type=int, default=120)
    ap.add_argument("--budget-s", type=float, default=60.0, help="time budget per cell")
    ap.add_argument("--episodes", type=int, default=16, help="recorded oracle episodes to replay")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    meta: dict[str, Any] = {"machine": machine_info(), "args": vars(args), "env_kwargs": ENV_KWARGS}
    episodes = record_episodes(args.episodes)
    # Burn-in: the first make/reset/step pays for imports and caches.
    _session(_InProcess, episodes, 0, 10, time.monotonic() + 30)
    proc, url = _start_server(max(args.concurrency))
    rows: list[dict[str, Any]] = []
    try:
        _session(lambda: _Remote(url), episodes, 0, 10, time.monotonic() + 30)
        for k in args.concurrency:
            quota = max(1, args.steps_per_session // max(1, k // 8))  # keep the 32-session cell's wall time bounded
            for mode, make in (("in_process", _InProcess), ("served", lambda: _Remote(url))):
                row = {"mode": mode, **run_cell(make, episodes, k, quota, args.budget_s)}
                rows.append(row)
                print(
                    f"{mode:>10} x{k:<3} {row['steps']:>5} steps  {row['steps_per_s']:8.1f} steps/s  "
                    f"p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms",
                    flush=True,
                )
    finally:
        proc.kill()
        proc.wait(timeout=30)
    meta["threads_alive_at_end"] = threading.active_count()
    results = Results(meta, tuple(records(rows)))
    write_results(args.out, results.meta, results.records)
    print("\n" + "\n".join(table(results.records, TABLE)))
    return results


if __name__ == "__main__":
    main()
