"""Tests of ``agemem-serve`` that need no server and no openenv-core: arguments, lazy import, the missing extra."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import agemem_gym
from agemem_gym.errors import ConfigError
from agemem_gym.serve import ServeArgs


# ---- no server (these run without openenv-core) ----
def test_import_agemem_gym_does_not_import_openenv() -> None:
    """``import agemem_gym`` (and ``agemem_gym.serve``) imports neither OpenEnv nor FastAPI."""
    code = (
        "import sys, agemem_gym, agemem_gym.serve; print(sorted(m for m in ('openenv', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_openenv_raises_import_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without openenv-core, building the app raises an ImportError that names ``agemem-gym[serve]``."""
    from agemem_gym.serve import create_app

    monkeypatch.setitem(sys.modules, "openenv", None)
    monkeypatch.delitem(sys.modules, "agemem_gym._serve_app", raising=False)
    monkeypatch.delattr(agemem_gym, "_serve_app", raising=False)  # an earlier import left it on the package
    monkeypatch.delitem(sys.modules, "openenv.core", raising=False)
    monkeypatch.delitem(sys.modules, "openenv.core.env_server", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'agemem-gym\[serve\]'"):
        create_app(ServeArgs())


def test_non_loopback_host_without_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Binding a non-loopback address needs a token or an explicit --allow-unauthenticated."""
    monkeypatch.delenv("AGEMEM_SERVE_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="not a loopback address"):
        ServeArgs(host="0.0.0.0").validate()
    ServeArgs(host="0.0.0.0", token="t").validate()
    ServeArgs(host="0.0.0.0", allow_unauthenticated=True).validate()
    monkeypatch.setenv("AGEMEM_SERVE_TOKEN", "from-env")
    ServeArgs(host="0.0.0.0").validate()
    assert ServeArgs().resolved_token() == "from-env"


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("max_sessions", 0, "'max_sessions' must be a positive int"),
        ("idle_timeout_s", 0.0, "'idle_timeout_s' must be a positive"),
        ("max_body_bytes", 10, "'max_body_bytes' must be an int >= 1024"),
        ("env_kwargs", "[1]", "--env-kwargs must be a JSON object"),
        ("env_kwargs", "{bad", "--env-kwargs must be a JSON object"),
    ],
)
def test_bad_arguments_name_the_rule(field: str, value: Any, match: str) -> None:
    """Each out-of-range argument is a ConfigError naming the argument and the rule."""
    with pytest.raises(ConfigError, match=match):
        ServeArgs(**{field: value}).validate()
