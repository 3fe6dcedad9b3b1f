"""Tests of ``agemem-serve``: a real server in a subprocess driven by OpenEnv's own client, against in-process twins."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

openenv = pytest.importorskip("openenv", reason="openenv-core is not installed: pip install 'agemem-gym[serve]'")

import agemem_gym  # noqa: E402,F401  (registers the ids)
from tests.data_paths import HOTPOT_SAMPLE, requires_hotpot  # noqa: E402

ENV_ID = "AgeMem-Synthetic-v0"
ENV_KWARGS: dict[str, Any] = {"n_tasks": 16}
TOKEN = "test-token-123"
MAX_SESSIONS = 9
MAX_STEPS = 200  # an oracle episode takes a few dozen turns; the bound only stops a broken loop


def _jsonify(value: Any) -> Any:
    """``value`` as it looks after a JSON round trip (tuples become lists)."""
    return json.loads(json.dumps(value))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running ``agemem-serve`` subprocess."""

    port: int
    proc: subprocess.Popen[bytes]

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://agemem:{TOKEN}@127.0.0.1:{self.port}"  # OpenEnv's client sends the userinfo as HTTP Basic


def _serve_command() -> list[str]:
    """The installed ``agemem-serve`` console script beside this interpreter, else ``python -m agemem_gym.serve``."""
    script = Path(sys.executable).with_name("agemem-serve")
    return [str(script)] if script.exists() else [sys.executable, "-m", "agemem_gym.serve"]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """``agemem-serve`` on a free loopback port, killed at the end whatever happens."""
    import httpx

    port = _free_port()
    cmd = [
        *_serve_command(),
        *("--env-id", ENV_ID, "--host", "127.0.0.1"),
        *("--port", str(port), "--token", TOKEN, "--max-sessions", str(MAX_SESSIONS)),
        *("--env-kwargs", json.dumps(ENV_KWARGS), "--max-body-bytes", "65536"),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"agemem-serve exited: {proc.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "agemem-serve did not answer /health within 90 s"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield Server(port, proc)
    finally:
        proc.kill()
        proc.wait(timeout=30)


def _client(url: str) -> Any:
    from openenv.core import GenericEnvClient

    return GenericEnvClient(base_url=url, message_timeout_s=60).sync()


def _episode(url: str, seed: int, task_id: str) -> dict[str, Any]:
    """One oracle episode on the server and on an in-process twin with the same seed, task and action texts."""
    from agemem_gym.evaluation.agents import OraclePolicy

    twin = gym.make(ENV_ID, **ENV_KWARGS)
    obs, info = twin.reset(seed=seed, options={"task_id": task_id})
    oracle = OraclePolicy(twin.unwrapped)
    oracle.reset(info)
    mismatches: list[str] = []
    rewards: list[float] = []
    with _client(url) as client:
        result = client.reset(seed=seed, task_id=task_id)
        remote = result.observation
        start = (remote["text"], remote["messages"])
        if (remote["text"], remote["messages"]) != (obs, _jsonify(info["messages"])):
            mismatches.append("reset")
        for turn in range(MAX_STEPS):
            action = oracle.act(obs, info)
            obs, reward, terminated, truncated, info = twin.step(action)
            result = client.step({"text": action})
            remote = result.observation
            rewards.append(float(result.reward))
            expected = {
                "text": obs,
                "reward": reward,
                "done": terminated or truncated,
                "messages": _jsonify(info["messages"]),
                "tools": _jsonify(info["tools"]),
                "stage": info["stage"],
                "reward_components": info["reward_components"],
                "action_error": info["action_error"],
                "episode": _jsonify(info.get("episode")),
            }
            got = {**remote, "reward": result.reward, "done": result.done}
            mismatches += [f"turn {turn}: {k}" for k, v in expected.items() if got[k] != v]
            if terminated or truncated:
                break
        state = client.state()
    return {
        "mismatches": mismatches,
        "rewards": rewards,
        "R": remote["episode"]["R"],
        "twin_R": info["episode"]["R"],
        "start": start,
        "state": state,
        "task_id": task_id,
    }


def test_eight_concurrent_oracle_sessions_equal_the_in_process_env(server: Server) -> None:
    """8 concurrent sessions (a GRPO group of 4 sharing one start, and 4 others) return the in-process env's
    observations, rewards, components, summary and R(τ) for the same seed, task and actions."""
    group = [(7, "syn-medium-s0-000003")] * 4
    others = [(i, f"syn-medium-s0-{i:06d}") for i in (1, 5, 9, 12)]
    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda st: _episode(server.ws, *st), group + others))
    for run in runs:
        assert run["mismatches"] == [], run["mismatches"][:5]
        assert run["R"] == run["twin_R"] == pytest.approx(sum(run["rewards"]), abs=1e-9)
        state = run["state"]
        assert (state["task_id"], state["done"], state["step_count"]) == (run["task_id"], True, len(run["rewards"]))
        assert state["env_id"] == ENV_ID and state["episode_id"]
        assert "store" not in state
    assert len({json.dumps(r["start"]) for r in runs[:4]}) == 1  # the group shares its start
    assert len({r["R"] for r in runs}) > 1 or len({r["task_id"] for r in runs}) > 1


def test_hostile_requests_get_4xx_and_the_server_keeps_serving(server: Server) -> None:
    """No token, bad JSON, huge bodies and messages, a step with no session, unknown reset keys and a full server
    are refused with a clear message, and a whole reset/step round trip works afterwards."""
    import httpx

    auth = {"Authorization": f"Bearer {TOKEN}"}
    h = server.http
    no_token = httpx.post(f"{h}/reset", json={})
    assert no_token.status_code == 401 and "token" in no_token.json()["detail"]
    assert httpx.post(f"{h}/reset", json={}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    with pytest.raises(Exception, match="401"), _client(f"ws://127.0.0.1:{server.port}") as c:
        c.reset(seed=0)

    bad_json = httpx.post(f"{h}/step", content=b"{not json", headers={**auth, "content-type": "application/json"})
    assert bad_json.status_code == 422
    huge = httpx.post(f"{h}/step", content=b"x" * 200_000, headers=auth)
    assert huge.status_code == 413 and "--max-body-bytes" in huge.json()["detail"]
    no_session = httpx.post(f"{h}/step", json={"action": {"text": "<answer>x</answer>"}}, headers=auth)
    assert no_session.status_code == 409 and "step before reset" in no_session.json()["detail"]
    extra_field = httpx.post(f"{h}/step", json={"action": {"txt": "x"}}, headers=auth)
    assert extra_field.status_code == 422
    bad_task = httpx.post(f"{h}/reset", json={"task_id": "no-such-task"}, headers=auth)
    assert bad_task.status_code == 400 and "is not in suite" in bad_task.json()["detail"]

    with _client(server.ws) as c:
        with pytest.raises(RuntimeError, match="step before reset"):
            c.step({"text": "<answer>x</answer>"})
        with pytest.raises(RuntimeError, match="unknown keyword"):
            c.reset(seed=0, colour="blue")
        with pytest.raises(RuntimeError, match="is not in suite"):
            c.reset(task_id="no-such-task")
        assert c.reset(seed=0).observation["stage"] == 1  # the same session still works after a failed reset
        assert c.step({"text": "<answer>x</answer>"}).reward is not None
    with _client(server.ws) as c:
        c.reset(seed=0)
        with pytest.raises(Exception, match=r"1009|too big"):  # a message over --max-body-bytes closes its socket
            c.step({"text": "x" * 100_000})

    clients = [_client(server.ws) for _ in range(MAX_SESSIONS + 1)]
    try:
        for c in clients[:MAX_SESSIONS]:
            c.reset(seed=0)
        with pytest.raises(ConnectionError, match="503"):
            clients[-1].reset(seed=0)
    finally:
        for c in clients:
            c.close()

    assert httpx.get(f"{h}/health").status_code == 200
    deadline = time.monotonic() + 10  # closed sessions free their slots as the server sees the disconnects
    while True:
        try:
            with _client(server.ws) as c:
                result = c.reset(seed=1, task_id="syn-medium-s0-000002")
                result = c.step({"text": "<answer>x</answer>"})
            break
        except RuntimeError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert result.reward is not None and result.observation["stage"] == 1
    assert server.proc.poll() is None


def test_a_closed_session_answers_with_a_clear_error() -> None:
    """A session the idle reaper closed refuses further requests, saying why and what to do."""
    from agemem_gym._serve_app import AgeMemAction, AgeMemServerEnv, SessionError

    env = AgeMemServerEnv(ENV_ID, ENV_KWARGS)
    assert env.state.stage is None
    env.reset(seed=0)
    env.close()
    with pytest.raises(SessionError, match="idle for longer than the server's --idle-timeout-s"):
        env.step(AgeMemAction(text="<answer>x</answer>"))


@requires_hotpot
def test_hotpotqa_session_equals_the_in_process_env() -> None:
    """A session of ``AgeMem-HotpotQA-v0`` (the shared sample) steps exactly like the in-process env."""
    from agemem_gym._serve_app import AgeMemAction, AgeMemServerEnv
    from agemem_gym.evaluation.agents import OraclePolicy

    kwargs = {"data_path": str(HOTPOT_SAMPLE)}
    session = AgeMemServerEnv("AgeMem-HotpotQA-v0", kwargs)
    twin = gym.make("AgeMem-HotpotQA-v0", **kwargs)
    obs, info = twin.reset(seed=3)
    remote = session.reset(seed=3, task_id=info["task_id"])
    assert (remote.text, remote.messages) == (obs, _jsonify(info["messages"]))
    oracle = OraclePolicy(twin.unwrapped)
    oracle.reset(info)
    for _ in range(MAX_STEPS):
        action = oracle.act(obs, info)
        obs, reward, terminated, truncated, info = twin.step(action)
        remote = session.step(AgeMemAction(text=action))
        assert (remote.text, remote.reward, remote.reward_components) == (obs, reward, info["reward_components"])
        if terminated or truncated:
            break
    assert remote.done and remote.episode == _jsonify(info["episode"])
    assert session.state.done and session.state.task_id == info["task_id"]


def test_frames_that_are_not_protocol_messages_are_answered_and_the_session_lives_on() -> None:
    """A JSON non-object, a binary frame or an invalid message gets an error reply, and the same session then
    resets and steps (OpenEnv 0.3 alone would end the session on the first two)."""
    from fastapi.testclient import TestClient

    from agemem_gym.serve import ServeArgs, create_app

    app = create_app(ServeArgs(env_kwargs=json.dumps(ENV_KWARGS), max_sessions=1))
    with TestClient(app) as http, http.websocket_connect("/ws") as ws:
        for frame in ("[]", "5", b"\x00\x01", '{"type": "step", "data": {"text": 5}}', '{"type": "zzz"}'):
            (ws.send_bytes if isinstance(frame, bytes) else ws.send_text)(frame)  # type: ignore[operator]
            reply = json.loads(ws.receive_text())
            assert reply["type"] == "error" and reply["data"]["message"], frame
        ws.send_text(json.dumps({"type": "reset", "data": {"seed": 2}}))
        assert json.loads(ws.receive_text())["type"] == "observation"
        ws.send_text(json.dumps({"type": "step", "data": {"text": "<answer>x</answer>"}}))
        assert json.loads(ws.receive_text())["data"]["reward"] is not None
