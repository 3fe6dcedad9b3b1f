"""The OpenEnv side of ``agemem-serve`` (needs the ``serve`` extra; :mod:`agemem_gym.serve` imports it lazily).

OpenEnv 0.3's simulation protocol has one env per WebSocket connection (``/ws``: ``reset`` / ``step`` / ``state``
/ ``close`` messages). Its HTTP ``/reset``, ``/step`` and ``/state`` make a fresh env per request, so an HTTP
``/step`` can never follow a reset: here it is answered 409 with a pointer to ``/ws``. Around OpenEnv's app sit a
bearer-token check and a request-size limit (:class:`_Guard`), and handlers that turn this library's errors into
4xx answers with its message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import gymnasium as gym
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from openenv.core.env_server import ConcurrencyConfig, Environment, create_fastapi_app
from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State
from pydantic import Field
from starlette.websockets import WebSocketDisconnect

import agemem_gym  # noqa: F401  (registers the ids)
from agemem_gym._validate import check
from agemem_gym._version import __version__
from agemem_gym.errors import AgeMemError, ConfigError
from agemem_gym.serve import ServeArgs

__all__ = [
    "AgeMemAction",
    "AgeMemObservation",
    "AgeMemServerEnv",
    "AgeMemState",
    "SessionError",
    "SessionIdle",
    "build_app",
    "run",
]

log = logging.getLogger("agemem_gym.serve")

# Keys of info that the observation carries as fields of their own (the rest goes to ``info``).
_OWN_FIELDS = ("messages", "tools", "stage", "step", "task_id", "action_error", "reward_components", "episode")


class SessionError(AgeMemError, RuntimeError):
    """A request that the session cannot serve in its state (step before reset, an expired session)."""


class AgeMemAction(Action):
    """One agent turn: the action text, exactly what ``env.step`` takes in-process."""

    text: str = Field(description="The agent's turn: <think>…</think> then <tool_call>[…]</tool_call> or <answer>…")


class AgeMemObservation(Observation):
    """What ``reset`` and ``step`` return: the env's observation and the JSON-safe part of its info."""

    text: str = Field(default="", description="The rendered context (the in-process observation)")
    messages: list[dict[str, Any]] = Field(default_factory=list, description="info['messages']")
    tools: list[dict[str, Any]] = Field(default_factory=list, description="info['tools'] (the tool schemas)")
    stage: int = Field(default=1, description="info['stage']: 1, 2 or 3")
    step: int = Field(default=0, description="info['step']: turns taken this episode")
    task_id: str = Field(default="", description="info['task_id']")
    action_error: str | None = Field(default=None, description="info['action_error']")
    reward_components: dict[str, float] = Field(default_factory=dict, description="info['reward_components']")
    terminated: bool = Field(default=False, description="The agent answered the stage-3 question")
    truncated: bool = Field(default=False, description="A limit ended the episode (reason in info)")
    episode: dict[str, Any] | None = Field(default=None, description="info['episode'] on the last step, else None")
    info: dict[str, Any] = Field(default_factory=dict, description="The rest of info (tool results, terms, ...)")


class AgeMemState(State):
    """The JSON-safe part of the session's state (``get_state()``'s snapshot itself is not sent)."""

    env_id: str = Field(description="The served id")
    task_id: str | None = Field(default=None, description="The current task (None before the first reset)")
    stage: int | None = Field(default=None, description="The current stage (None before the first reset)")
    done: bool = Field(default=False, description="The episode has ended")
    episode_return: float = Field(default=0.0, description="The sum of this episode's step rewards so far")


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays, tuples and non-str keys turned into plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class AgeMemServerEnv(Environment):
    """One session's env: ``gymnasium.make(env_id, **env_kwargs)``, made on the first reset.

    Args:
        env_id: The registered id.
        env_kwargs: Constructor kwargs (validated once at start-up by :func:`build_app`).
    """

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, env_id: str, env_kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs)
        self._env: gym.Env[str, str] | None = None
        self._episode_id: str | None = None
        self._task_id: str | None = None
        self._stage: int | None = None
        self._steps = 0
        self._return = 0.0
        self._done = False
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise SessionError(
                "this session was closed (idle for longer than the server's --idle-timeout-s, or shut down); "
                "open a new connection"
            )

    def reset(  # type: ignore[override]
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        task_id: str | None = None,
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> AgeMemObservation:
        """``env.reset(seed=seed, options={**options, "task_id": task_id})``, as in-process.

        Raises:
            ConfigError: An unknown keyword, a bad seed, options or task id (the env's own message).
        """
        self._check_open()
        if kwargs:
            raise ConfigError(
                f"reset got unknown keyword(s) {sorted(kwargs)}; it takes seed, task_id, episode_id and options "
                "(the env's reset options, e.g. {'material_seed': 1})"
            )
        check("seed", seed, "int", ge=0, optional=True, rule="a non-negative int or null")
        if options is not None and not isinstance(options, Mapping):
            raise ConfigError(f"'options' must be a JSON object or null, got {options!r:.80}")
        opts = dict(options or {})
        if task_id is not None:
            if not isinstance(task_id, str):
                raise ConfigError(f"'task_id' must be a string, got {task_id!r:.80}")
            opts["task_id"] = task_id
        if self._env is None:
            self._env = gym.make(self.env_id, **self.env_kwargs)
        try:
            obs, info = self._env.reset(seed=seed, options=opts or None)
        except Exception as err:
            # A failed reset leaves Gymnasium's wrappers half-reset (the passive checker then fails the next step),
            # so the next reset starts from a fresh env; the session has no episode until then.
            self._env.close()
            self._env, self._episode_id, self._done = None, None, False
            if isinstance(err, (TypeError, KeyError)):  # a malformed option the env did not wrap
                raise ConfigError(f"reset options {opts!r:.200} were rejected: {err}") from err
            raise
        self._episode_id = episode_id or str(uuid.uuid4())
        self._steps, self._return, self._done = 0, 0.0, False
        return self._observation(obs, None, False, False, info)

    def step(self, action: AgeMemAction, timeout_s: float | None = None, **kwargs: Any) -> AgeMemObservation:  # type: ignore[override]
        """``env.step(action.text)``.

        Raises:
            SessionError: No episode is running (no reset yet, or the last one ended).
        """
        self._check_open()
        if self._env is None:
            raise SessionError("step before reset: send a reset (with seed and task_id) first")
        if self._done:
            raise SessionError("the episode has ended: send a reset before stepping again")
        obs, reward, terminated, truncated, info = self._env.step(action.text)
        self._steps += 1
        self._return += float(reward)
        self._done = bool(terminated or truncated)
        return self._observation(obs, float(reward), bool(terminated), bool(truncated), info)

    def _observation(
        self, obs: str, reward: float | None, terminated: bool, truncated: bool, info: Mapping[str, Any]
    ) -> AgeMemObservation:
        self._task_id, self._stage = str(info["task_id"]), int(info["stage"])
        safe = _jsonable(info)
        return AgeMemObservation(
            done=terminated or truncated,
            reward=reward,
            text=obs,
            messages=safe["messages"],
            tools=safe["tools"],
            stage=safe["stage"],
            step=safe["step"],
            task_id=safe["task_id"],
            action_error=safe["action_error"],
            reward_components=safe["reward_components"],
            terminated=terminated,
            truncated=truncated,
            episode=safe.get("episode"),
            info={k: v for k, v in safe.items() if k not in _OWN_FIELDS},
        )

    @property
    def state(self) -> AgeMemState:
        """Stage, step, task id and episode id (JSON-safe; never the pickled store)."""
        return AgeMemState(
            episode_id=self._episode_id,
            step_count=self._steps,
            env_id=self.env_id,
            task_id=self._task_id,
            stage=self._stage,
            done=self._done,
            episode_return=self._return,
        )

    def get_metadata(self) -> EnvironmentMetadata:
        """The served id and this package's version."""
        return EnvironmentMetadata(
            name=self.env_id,
            description=f"AgeMem-Gym {self.env_id}: an LLM agent manages its long- and short-term memory",
            version=__version__,
            documentation_url="docs/serving.md",
        )

    def close(self) -> None:
        """Free the env; later requests on this session get a :class:`SessionError`."""
        self._closed = True
        if self._env is not None:
            self._env.close()
            self._env = None


# ---- guards: token and size ----
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyTooLarge(Exception):
    pass


class SessionIdle(Exception):
    """Raised into OpenEnv's session loop when a socket sends nothing for ``--idle-timeout-s``: OpenEnv then sends
    this message as a SESSION_ERROR, frees the session's env and closes the socket."""


class _Guard:
    """ASGI middleware around OpenEnv's app: a bearer token on every request but ``/health``, a cap on HTTP body
    size, the session cap checked at the WebSocket handshake, and idle sockets closed.

    The session cap is enforced here, before OpenEnv accepts the socket, because OpenEnv 0.3 accepts the socket,
    sends its CAPACITY_REACHED error unprompted and closes: its own client, which sends first, then sees only a
    closed connection. Refusing the handshake (HTTP 503 with the reason) gives that client a clear error.
    Idle sockets are closed here too: OpenEnv's reaper frees an idle session's env but leaves its socket open.
    """

    def __init__(
        self, app: ASGIApp, *, token: str | None, max_body_bytes: int, max_sessions: int, idle_timeout_s: float
    ) -> None:
        self.app = app
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.max_sessions = max_sessions
        self.idle_timeout_s = idle_timeout_s
        self.open_sockets = 0

    def _authorized(self, scope: Scope) -> bool:
        if self.token is None or scope.get("path") == "/health":
            return True
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            given = value.strip()
        elif scheme.lower() == "basic":  # ws://user:<token>@host: what OpenEnv's client sends for a URL's userinfo
            try:
                given = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return False
        else:
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not self._authorized(scope):
            message = "missing or wrong token: send 'Authorization: Bearer <token>' (the server's --token)"
            if scope["type"] == "http":
                await _json(send, 401, message, extra_headers=[(b"www-authenticate", b"Bearer")])
            else:
                await self._deny(scope, receive, send, 401, message)
            return
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            declared = headers.get(b"content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
                await _json(send, 413, self._too_large(declared.decode("latin-1")))
                return
            receive = self._capped(receive)
            try:
                await self.app(scope, receive, send)
            except _BodyTooLarge:
                await _json(send, 413, self._too_large("more (chunked)"))
            return
        if self.open_sockets >= self.max_sessions:
            await self._deny(
                scope,
                receive,
                send,
                503,
                f"server full: {self.open_sockets} sessions are open and the limit is {self.max_sessions} (the "
                "server's --max-sessions); close a session or retry later",
            )
            return
        self.open_sockets += 1
        try:
            # OpenEnv 0.3 closes a socket that the client already closed; nothing is left to answer.
            with contextlib.suppress(WebSocketDisconnect):
                await self.app(scope, self._session_receive(receive, send), send)
        finally:
            self.open_sockets -= 1

    async def _deny(self, scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
        """Refuse a WebSocket handshake with an HTTP status and a JSON reason (close code 1008 where the server
        cannot send an HTTP response)."""
        if "websocket.http.response" in scope.get("extensions", {}):
            await receive()  # the websocket.connect event
            await _json(send, status, message, prefix="websocket.")
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})

    def _session_receive(self, receive: Receive, send: Send) -> Receive:
        """``receive`` for OpenEnv's session loop: raises :class:`SessionIdle` after ``idle_timeout_s`` of silence,
        and answers frames that are not a JSON object itself (OpenEnv 0.3 would end the session on them)."""
        timeout = self.idle_timeout_s

        async def receive_checked() -> Message:
            while True:
                try:
                    message = await asyncio.wait_for(receive(), timeout)
                except asyncio.TimeoutError:
                    raise SessionIdle(
                        f"session closed: idle for more than {timeout:g} s (the server's --idle-timeout-s); "
                        "open a new connection"
                    ) from None
                if message["type"] != "websocket.receive":
                    return message
                problem = _frame_problem(message)
                if problem is None:
                    return message
                error = {"type": "error", "data": {"message": problem, "code": "VALIDATION_ERROR"}}
                await send({"type": "websocket.send", "text": json.dumps(error)})

        return receive_checked

    def _too_large(self, size: str) -> str:
        return (
            f"request body too large: {size} bytes, the limit is {self.max_body_bytes} (the server's --max-body-bytes)"
        )

    def _capped(self, receive: Receive) -> Receive:
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        return capped


def _frame_problem(message: Message) -> str | None:
    """Why a WebSocket frame is not a protocol message, or None when it is (or is not JSON: OpenEnv answers that)."""
    text = message.get("text")
    if text is None:
        return 'binary frames are not accepted: send a JSON object such as {"type": "reset", "data": {}}'
    try:
        value = json.loads(text)
    except ValueError:
        return None  # OpenEnv answers INVALID_JSON and keeps the session
    if not isinstance(value, dict):
        return f"a message must be a JSON object with a 'type' (reset, step, state, close), got {type(value).__name__}"
    return None


async def _json(
    send: Send, status: int, message: str, *, prefix: str = "", extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": f"{prefix}http.response.start", "status": status, "headers": headers + (extra_headers or [])})
    await send({"type": f"{prefix}http.response.body", "body": body})


# ---- the app ----
def build_app(args: ServeArgs) -> FastAPI:
    """OpenEnv's FastAPI app for ``args.env_id`` with the guards and 4xx error handlers (see the module docstring).

    Raises:
        ConfigError: The env cannot be made with ``args.env_kwargs`` (checked once, here).
    """
    kwargs = args.kwargs()
    try:
        gym.make(args.env_id, **kwargs).close()
    except AgeMemError:
        raise
    except (gym.error.Error, TypeError, ValueError) as err:
        raise ConfigError(f"cannot make {args.env_id!r} with env_kwargs {kwargs!r:.200}: {err}") from err

    def factory() -> AgeMemServerEnv:
        return AgeMemServerEnv(args.env_id, kwargs)

    app = create_fastapi_app(
        factory,
        AgeMemAction,
        AgeMemObservation,
        concurrency_config=ConcurrencyConfig(
            max_concurrent_envs=args.max_sessions, session_timeout=float(args.idle_timeout_s)
        ),
    )

    async def session_error(_request: Request, err: Exception) -> JSONResponse:
        detail = str(err)
        if "step before reset" in detail:
            detail += " (HTTP /step is stateless in OpenEnv, one env per request: use the WebSocket /ws session)"
        return JSONResponse({"detail": detail}, status_code=409)

    async def request_error(_request: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    app.add_exception_handler(SessionError, session_error)
    app.add_exception_handler(AgeMemError, request_error)
    app.add_exception_handler(gym.error.Error, request_error)
    app.add_middleware(
        _Guard,  # type: ignore[arg-type]
        token=args.resolved_token(),
        max_body_bytes=args.max_body_bytes,
        max_sessions=args.max_sessions,
        idle_timeout_s=float(args.idle_timeout_s),
    )
    return app


def run(args: ServeArgs) -> None:
    """Serve :func:`build_app` under uvicorn (blocking) with the WebSocket message cap and a connection cap."""
    import uvicorn

    app = build_app(args)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ws_max_size=args.max_body_bytes,
        # Sessions are WebSockets; leave room for health checks and refused connections beyond the session cap.
        limit_concurrency=args.max_sessions + 16,
        timeout_keep_alive=5,
    )
