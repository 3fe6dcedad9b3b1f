"""``agemem-serve``: any registered AgeMem id behind OpenEnv's server, so OpenEnv's own clients drive it unchanged.

agemem-serve --env-id AgeMem-Synthetic-v0 --port 8000
agemem-serve --env-id AgeMem-HotpotQA-v0 --env-kwargs '{"data_path": "hotpot_dev_distractor_v1.json"}'
AGEMEM_SERVE_TOKEN=s3cret agemem-serve --host 0.0.0.0 --port 8000   # a non-loopback host needs a token

A session is one OpenEnv WebSocket connection (``/ws``) with its own env, made by ``gymnasium.make`` exactly as
in-process; ``reset`` takes ``seed``, ``task_id`` and ``options`` (the env's reset options), so a GRPO group of K
sessions reset with one seed and task id shares its start. The observation carries the rendered context, the
messages, the tool schemas, the stage, the reward and its components and, on the last step, the episode summary
(``info["episode"]``); ``state`` returns the JSON-safe part of the env's state. See ``docs/serving.md``.

This module imports neither OpenEnv nor FastAPI until a server is built (``import agemem_gym`` never does); the
server itself is in :mod:`agemem_gym._serve_app` and needs the ``serve`` extra:
``pip install 'agemem-gym[serve]'``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import tyro

from agemem_gym._validate import check_field
from agemem_gym.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["TOKEN_ENV_VAR", "ServeArgs", "create_app", "main", "serve"]

TOKEN_ENV_VAR = "AGEMEM_SERVE_TOKEN"
"""Environment variable read for the bearer token when ``--token`` is not given."""


def _flag(name: str) -> str:
    """The fix for a bad ServeArgs field: its command-line flag with the default value."""
    return f"e.g. --{name.replace('_', '-')} {getattr(ServeArgs, name)}"


@dataclass
class ServeArgs:
    """Serve one registered AgeMem id through OpenEnv's server (one env per WebSocket session)."""

    env_id: str = "AgeMem-Synthetic-v0"
    """Registered env id to serve."""
    env_kwargs: str = "{}"
    """Env constructor kwargs as a JSON object, e.g. '{"reward_weights": "released_weights"}'."""
    host: str = "127.0.0.1"
    """Interface to bind. Loopback by default; any other address needs a token (or --allow-unauthenticated)."""
    port: int = 8000
    """TCP port (0 picks a free one; the chosen port is logged)."""
    token: str | None = None
    """Bearer token that every request must carry (``Authorization: Bearer <token>``, or HTTP Basic with the token as
    password, which OpenEnv's client sends for ``ws://user:<token>@host:port``). Default: $AGEMEM_SERVE_TOKEN."""
    allow_unauthenticated: bool = False
    """Allow a non-loopback --host without a token (anyone who can reach the port can then run episodes)."""
    max_sessions: int = 32
    """Most concurrent sessions; a connection beyond it gets a CAPACITY_REACHED error naming this limit."""
    idle_timeout_s: float = 300.0
    """Sessions idle for longer are closed and their env freed (checked every max(timeout/4, 5 s))."""
    max_body_bytes: int = 1_048_576
    """Largest HTTP request body and WebSocket message accepted (larger: HTTP 413, or the socket is closed)."""
    log_level: str = "warning"
    """uvicorn's log level."""

    def validate(self) -> None:
        """Check the arguments once, at the boundary.

        Raises:
            ConfigError: A limit is out of range, ``env_kwargs`` is not a JSON object, or a non-loopback host has
                no token.
        """
        check_field(self, "max_sessions", "int", gt=0, fix=_flag("max_sessions"))
        check_field(self, "idle_timeout_s", "number", gt=0, unit="seconds", fix=_flag("idle_timeout_s"))
        check_field(self, "max_body_bytes", "int", ge=1024, fix=_flag("max_body_bytes"))
        check_field(self, "port", "int", ge=0, le=65535, fix="0 picks a free port")
        self.kwargs()
        if not _is_loopback(self.host) and not self.resolved_token() and not self.allow_unauthenticated:
            raise ConfigError(
                f"'host' {self.host!r} is not a loopback address and no token is set: anyone who can reach it could "
                f"run episodes. Pass --token (or set ${TOKEN_ENV_VAR}), bind 127.0.0.1, or pass "
                "--allow-unauthenticated"
            )

    def kwargs(self) -> dict[str, Any]:
        """``env_kwargs`` decoded.

        Raises:
            ConfigError: It is not a JSON object.
        """
        try:
            kwargs = json.loads(self.env_kwargs)
        except json.JSONDecodeError as err:
            raise ConfigError(f"--env-kwargs must be a JSON object, got {self.env_kwargs!r} ({err.msg})") from None
        if not isinstance(kwargs, dict):
            raise ConfigError(f"--env-kwargs must be a JSON object, got {self.env_kwargs!r}")
        return kwargs

    def resolved_token(self) -> str | None:
        """``token``, else ``$AGEMEM_SERVE_TOKEN``, else None (an empty string counts as unset)."""
        return self.token or os.environ.get(TOKEN_ENV_VAR) or None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _import_app() -> Any:
    try:
        from agemem_gym import _serve_app
    except ImportError as err:
        if "openenv" not in str(err) and "fastapi" not in str(err) and "uvicorn" not in str(err):
            raise
        raise ImportError(
            f"agemem-serve needs openenv-core (and its FastAPI/uvicorn server), which is not installed ({err}). "
            "Install the extra: pip install 'agemem-gym[serve]'"
        ) from err
    return _serve_app


def create_app(args: ServeArgs) -> FastAPI:
    """The ASGI app that serves ``args.env_id``: OpenEnv's FastAPI app behind the token and size guards.

    Args:
        args: Server settings; validated here, and one env is made to check ``env_kwargs`` before serving.

    Raises:
        ConfigError: ``args`` is invalid (see :meth:`ServeArgs.validate`) or the env cannot be made with them.
        ImportError: openenv-core is not installed (``pip install 'agemem-gym[serve]'``).
    """
    args.validate()
    return _import_app().build_app(args)


def serve(args: ServeArgs) -> None:
    """Build the app and run it under uvicorn until interrupted."""
    args.validate()
    _import_app().run(args)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``agemem-serve``."""
    args = tyro.cli(ServeArgs, args=argv)
    try:
        serve(args)
    except (ConfigError, ImportError) as err:
        print(f"agemem-serve: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
