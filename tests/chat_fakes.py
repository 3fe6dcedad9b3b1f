"""A scripted OpenAI-compatible chat endpoint on loopback, and the scripted turns it serves (served-model tests).

The "model" is a Python function of the prompt messages. :func:`oracle_script` plays a scripted policy on an
in-process env first and serves its turns looked up by the exact prompt the env showed it, so a rollout driven
through a library gets the policy's turns only while every prompt it sends is the in-process env's context, message
for message; any other prompt is answered with :data:`OFF_SCRIPT` (which the env scores as a bad answer).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import gymnasium as gym

import agemem_gym  # noqa: F401
from agemem_gym.evaluation.agents import OraclePolicy, tool_call

Script = Callable[[list[dict[str, str]]], str]
OFF_SCRIPT = "<answer>off script</answer>"


def plain(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Role and text of each message (what the scripts and the comparisons look at)."""
    return [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in messages]


@dataclass
class ChatServer:
    """The running endpoint: its base URL and every prompt it was sent, by the session id verifiers sends."""

    base_url: str
    prompts: dict[str, list[list[dict[str, str]]]] = field(default_factory=dict)

    def all_prompts(self) -> list[list[dict[str, str]]]:
        return [p for session in self.prompts.values() for p in session]


@contextmanager
def chat_server(script: Script) -> Iterator[ChatServer]:
    """Serve ``POST /v1/chat/completions`` (non-streaming) on a free loopback port in a thread."""
    lock = threading.Lock()
    server_state = ChatServer(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            messages = plain(body["messages"])
            with lock:
                server_state.prompts.setdefault(self.headers.get("X-Session-ID", ""), []).append(messages)
            text = script(messages)
            reply = {
                "id": "chatcmpl-scripted",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "scripted"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(json.dumps(messages)) // 4, "completion_tokens": len(text) // 4},
            }
            reply["usage"]["total_tokens"] = reply["usage"]["prompt_tokens"] + reply["usage"]["completion_tokens"]
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


class SummarisingOracle:
    """The scripted oracle (:class:`agemem_gym.evaluation.agents.OraclePolicy`), plus one ``Summary_context`` of its last two
    messages after its first stage-2 tool call, so that an episode has every kind of context edit: the stage-2
    reset, ``Filter_context`` and ``Summary_context``."""

    def __init__(self, env: Any) -> None:
        self.oracle = OraclePolicy(env)
        self.summarised = False

    def reset(self, info: Mapping[str, Any]) -> None:
        self.oracle.reset(info)
        self.summarised = False

    def act(self, observation: Any, info: Mapping[str, Any]) -> str:
        messages = info.get("messages", [])
        if info.get("stage") == 2 and messages and messages[-1]["role"] == "tool" and not self.summarised:
            self.summarised = True
            return tool_call(("Summary_context", {"span": "2", "summary": "I set aside an unrelated paragraph."}))
        return self.oracle.act(observation, info)


@dataclass
class Played:
    """One episode of a scripted policy on the in-process env."""

    prompts: list[list[dict[str, str]]]
    """each step's context as the model is shown it (:func:`agemem_gym.adapters.verifiers_v1.vf_messages`)"""
    actions: list[str]
    rewards: list[float]
    episode: dict[str, Any]


def play(env_id: str, env_kwargs: Mapping[str, Any], task_id: str, policy: Callable[[Any], Any]) -> Played:
    """Play ``policy(env.unwrapped)`` for one episode of ``task_id`` on a fresh in-process env."""
    from agemem_gym.adapters.verifiers_v1 import vf_messages

    env = gym.make(env_id, **dict(env_kwargs))
    _, info = env.reset(options={"task_id": task_id})
    agent = policy(env.unwrapped)
    agent.reset(info)
    played = Played([], [], [], {})
    observation: Any = None
    while True:
        action = agent.act(observation, info)
        played.prompts.append(plain(vf_messages(info["messages"])))
        played.actions.append(action)
        observation, reward, terminated, truncated, info = env.step(action)
        played.rewards.append(float(reward))
        if terminated or truncated:
            played.episode = dict(info["episode"])
            env.close()
            return played


def oracle_script(games: Sequence[Played]) -> Script:
    """A script that answers each prompt of ``games`` with the action played on it, and anything else off script."""
    table = {json.dumps(p): a for g in games for p, a in zip(g.prompts, g.actions)}
    return lambda messages: table.get(json.dumps(messages), OFF_SCRIPT)
