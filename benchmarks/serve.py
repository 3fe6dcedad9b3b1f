"""``agemem-serve`` against the in-process env: steps/s and p50/p99 step latency at 1, 8 and 32 concurrent sessions.

python -m benchmarks.serve                      # writes benchmarks/results/serve.json and prints a table
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
import platform
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
from agemem_gym.agents import OraclePolicy

__all__ = ["main", "record_episodes", "run_cell"]

ENV_ID = "AgeMem-Synthetic-v0"
ENV_KWARGS: dict[str, Any] = {"n_tasks": 64}
RESULTS = Path(__file__).parent / "results" / "serve.json"

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


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run every cell (in-process and served, interleaved by concurrency) and write the JSON results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--steps-per-session", type=int, default=120)
    ap.add_argument("--budget-s", type=float, default=60.0, help="time budget per cell")
    ap.add_argument("--episodes", type=int, default=16, help="recorded oracle episodes to replay")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

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
    by = {(r["mode"], r["sessions"]): r for r in rows}
    for k in args.concurrency:
        served, local = by[("served", k)], by[("in_process", k)]
        served["throughput_vs_in_process"] = served["steps_per_s"] / local["steps_per_s"]
    result = {
        "env_id": ENV_ID,
        "env_kwargs": ENV_KWARGS,
        "machine": {"python": platform.python_version(), "cpus": _cpus(), "platform": platform.platform()},
        "threads_alive_at_end": threading.active_count(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        "\n| sessions | in-process steps/s | served steps/s | served / in-process | in-process p50 / p99 ms | served p50 / p99 ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for k in args.concurrency:
        s, loc = by[("served", k)], by[("in_process", k)]
        print(
            f"| {k} | {loc['steps_per_s']:.0f} | {s['steps_per_s']:.0f} | {s['throughput_vs_in_process']:.2f} | "
            f"{loc['p50_ms']:.2f} / {loc['p99_ms']:.2f} | {s['p50_ms']:.2f} / {s['p99_ms']:.2f} |"
        )
    return result


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    main()
