"""A scripted OpenAI-compatible chat endpoint on loopback (the standard library's HTTP server in a thread).

It speaks the wire format the ``openai`` client expects (``POST /v1/chat/completions``), records every request,
counts how many are in flight at once, and answers through a ``respond`` callable, so tests can script replies,
delays, failures and malformed bodies.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, str], Any]  # status, headers, body (a dict is sent as JSON, bytes as they are)


@dataclass
class SeenRequest:
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class FakeChat:
    respond: Callable[[dict[str, Any], int], Reply]
    requests: list[SeenRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def completion(text: str | None, *, usage: Any = "count", finish: str = "stop", **choice: Any) -> dict[str, Any]:
    """A chat.completion body; ``usage="count"`` reports whitespace-word counts (see :func:`word_usage`)."""
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish, **choice}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def word_usage(request: dict[str, Any], text: str) -> dict[str, int]:
    """The fake's token counts: whitespace words of the prompt's contents and of the reply."""
    prompt = sum(len(str(m["content"]).split()) for m in request["messages"])
    completion_tokens = len(text.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens}


def scripted_turn(request: dict[str, Any]) -> str:
    """An agent that stores each user message and answers once the tool result is back, with the last capitalised
    word of that message (so answers, and rewards, differ by task); the closing tag is left to the client when it
    asked to stop there."""
    last = str(request["messages"][-1]["content"])
    if last.startswith(("[", "error")):  # a tool result (or feedback): close the turn
        told = [str(m["content"]) for m in request["messages"] if not str(m["content"]).startswith(("[", "error"))]
        words = [w.strip("?.,") for w in told[-1].split() if w[:1].isupper()]
        text = f"<think>Stored.</think><answer>{words[-1] if words else 'ok'}"
        return text if request.get("stop") else text + "</answer>"
    call = json.dumps([{"name": "Add_memory", "arguments": {"content": last[:200]}}])
    text = f"<think>Keep this.</think><tool_call>{call}"
    return text if request.get("stop") else text + "</tool_call>"


def scripted(request: dict[str, Any], n: int) -> Reply:
    text = scripted_turn(request)
    return 200, {}, completion(text, usage=word_usage(request, text))


@contextmanager
def fake_chat(
    respond: Callable[[dict[str, Any], int], Reply] = scripted,
    *,
    delay: Callable[[dict[str, Any]], float] | None = None,
) -> Iterator[FakeChat]:
    """Serve ``respond`` on a free loopback port for the duration of the block."""
    fake = FakeChat(respond)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            body = json.loads(raw)
            with fake.lock:
                n = len(fake.requests)
                fake.requests.append(
                    SeenRequest(body, {k.lower(): v for k, v in self.headers.items()}, time.monotonic())
                )
                fake.in_flight += 1
                fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
            try:
                if delay is not None:
                    time.sleep(delay(body))
                status, headers, payload = fake.respond(body, n)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            finally:
                with fake.lock:
                    fake.in_flight -= 1

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:  # a client that hung up (timeouts)
            pass

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
