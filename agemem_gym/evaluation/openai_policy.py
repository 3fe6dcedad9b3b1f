"""Any OpenAI-compatible chat endpoint as a policy (vLLM, SGLang, llama.cpp's server, a hosted API).

Runs:
    agemem-eval --policies "openai:http://127.0.0.1:8000/v1?model=Qwen/Qwen2.5-7B-Instruct" --episodes 200
    agemem-eval --policies no_memory "openai:http://gpu-box:8000/v1?model=m&concurrency=32&temperature=0.7&seed=auto"
    agemem-eval --policies "openai:http://127.0.0.1:8000/v1?model=m" --record-dir rec   # then export_sft(...)
    python -m agemem_gym.trainers.sft --policy "openai:http://127.0.0.1:8000/v1?model=m" ...   # SFT, one at a time

``make_policy("openai:<base_url>?option=value&...", env, seed=...)`` finds :func:`from_spec` through the
``agemem_gym.policies`` entry point named ``openai``. Each agent turn is one chat completion over the env's context
(``info["messages"]``, the context *after* the agent's own SUMMARY/FILTER edits; the env's tool results travel as
user messages, since they answer no OpenAI-style tool call). The options (all but ``model`` optional):

=============== ================== ====================================================================================
option          default            meaning
=============== ================== ====================================================================================
``model``       (required)         the served model's name (vLLM: the name given to ``vllm serve``; see ``GET /models``)
``temperature`` ``0``              sampling temperature (0: greedy, as evaluations usually are)
``top_p``       ``1``              nucleus sampling
``max_tokens``  ``256``            most tokens one turn may generate
``concurrency`` ``8``              episodes in flight at once in ``agemem-eval`` (one env each)
``retries``     ``4``              retries of a request that failed transiently (connection, timeout, 408, 429, 5xx)
``backoff``     ``0.5``            seconds before the first retry; doubled for each next one (at most 30 s, less 0-25 %
                                   jitter); a server's ``Retry-After`` (up to 60 s) is honoured instead
``timeout``     ``120``            seconds one request may take
``seed``        (not sent)         an int, or ``auto`` for the evaluation's ``--seed``: each request then carries a seed
                                   made from it, the episode's position in the task list and the turn, so servers that
                                   honour it (vLLM, SGLang, llama.cpp) sample reproducibly whatever the concurrency
``stop``        ``1``              stop at ``</tool_call>`` / ``</answer>`` (the closing tag is put back); ``0``
                                   lets the model write until it ends its turn
``api_key_env`` ``OPENAI_API_KEY`` the environment variable that holds the API key (unset: a placeholder
                                   key is sent, which servers without authentication ignore)
=============== ================== ====================================================================================

The key itself never goes in the spec: a spec is shown in tables, logs and recordings, so ``api_key=`` and
``user:password@`` in the URL are refused. Each episode counts the prompt and completion tokens that the server
reports in its responses' ``usage`` (:class:`~agemem_gym.evaluation.agents.TokenUsage`); ``agemem-eval`` reports them per turn.

What the server writes is untrusted: a missing or malformed message, content or usage never raises (an empty turn
becomes the env's ``no_action`` feedback, a missing usage makes the episode's counts unknown). A request that fails
for good raises :class:`~agemem_gym.errors.EndpointError` naming the endpoint, the status and the likely fix.

Needs the ``openai`` extra: ``pip install 'agemem-gym[openai]'`` (the ``openai`` client, 3.x).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from agemem_gym._validate import check_field
from agemem_gym.errors import ConfigError, EndpointError
from agemem_gym.evaluation.agents import TokenUsage

__all__ = [
    "API_KEY_ENV_VAR",
    "STOP_STRINGS",
    "OpenAIEpisode",
    "OpenAIPolicy",
    "OpenAISettings",
    "chat_messages",
    "from_spec",
    "parse_spec",
]

log = logging.getLogger(__name__)

API_KEY_ENV_VAR = "OPENAI_API_KEY"
"""The environment variable read for the API key unless the spec names another with ``api_key_env=``."""
STOP_STRINGS: tuple[str, ...] = ("</tool_call>", "</answer>")
"""Where a turn ends: the closing tags of the protocol's two actions."""

_MAX_BACKOFF_S = 30.0
_MAX_RETRY_AFTER_S = 60.0
_PLACEHOLDER_KEY = "EMPTY"  # vLLM's and SGLang's documented placeholder for servers started without --api-key
_ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class OpenAISettings:
    """Where the model is served and how turns are sampled; validated on construction (see the module's table).

    Raises:
        ConfigError: A field breaks its rule; the message names the field, the value and the rule.
    """

    base_url: str
    model: str
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    concurrency: int = 8
    retries: int = 4
    backoff: float = 0.5
    timeout: float = 120.0
    seed: int | None = None
    stop: bool = True
    api_key_env: str = API_KEY_ENV_VAR

    def __post_init__(self) -> None:
        url = urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(
                f"the endpoint must be an http(s) URL such as http://127.0.0.1:8000/v1, got {self.base_url!r}"
            )
        if url.username is not None or url.password is not None:
            raise ConfigError(
                "the endpoint URL must not carry credentials (user:password@): a spec is shown in tables, logs and "
                f"recordings; put the key in ${self.api_key_env} instead"
            )
        if url.query or url.fragment:
            raise ConfigError(f"'base_url' must have no query or fragment, got {self.base_url!r}")
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(
                "an openai policy needs the served model's name: add ?model=<name> (vLLM: the name given to "
                "`vllm serve`; GET <base_url>/models lists them)"
            )
        option = "openai policy option"
        check_field(self, "temperature", "number", ge=0, le=2, label=option)
        check_field(self, "top_p", "number", gt=0, le=1, label=option)
        check_field(self, "max_tokens", "int", gt=0, label=option)
        check_field(self, "concurrency", "int", ge=1, le=256, label=option)
        check_field(self, "retries", "int", ge=0, le=20, label=option)
        check_field(self, "backoff", "number", ge=0, le=_MAX_BACKOFF_S, unit="seconds", label=option)
        check_field(self, "timeout", "number", gt=0, unit="seconds", label=option)
        check_field(
            self, "seed", "int", ge=0, optional=True, rule="a non-negative int (or 'auto' in a spec)", label=option
        )
        check_field(self, "stop", "bool", label=option)
        if not isinstance(self.api_key_env, str) or not _ENV_VAR_NAME.fullmatch(self.api_key_env):
            raise ConfigError(f"'api_key_env' must be an environment variable's name, got {self.api_key_env!r}")

    def request_seed(self, episode: int, turn: int) -> int | None:
        """The seed sent with turn ``turn`` of the episode at position ``episode`` (None: none is sent)."""
        if self.seed is None:
            return None
        return ((self.seed * 1_000_003 + episode) * 10_007 + turn) % 2**31


_INT_OPTIONS = ("max_tokens", "concurrency", "retries")
_FLOAT_OPTIONS = ("temperature", "top_p", "backoff", "timeout")
_OPTIONS: tuple[str, ...] = (
    "model",
    "temperature",
    "top_p",
    "max_tokens",
    "concurrency",
    "retries",
    "backoff",
    "timeout",
    "seed",
    "stop",
    "api_key_env",
)


def parse_spec(spec: str, *, seed: int = 0) -> OpenAISettings:
    """Settings from ``"<base_url>?model=NAME&option=value&..."`` (what follows ``openai:`` in a policy name).

    Args:
        spec: The endpoint and its options (see the module's table).
        seed: What ``seed=auto`` stands for (``agemem-eval`` passes its ``--seed``).

    Raises:
        ConfigError: The URL is not http(s), an option is unknown, repeated, malformed or out of range, the model is
            missing, or the spec tries to carry an API key.

    >>> parse_spec("http://127.0.0.1:8000/v1?model=m&temperature=0.7&max_tokens=64").max_tokens
    64
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("an openai policy needs an endpoint: 'openai:http://host:8000/v1?model=<name>'")
    url = urlsplit(spec.strip())
    try:
        pairs = parse_qsl(url.query, keep_blank_values=True, strict_parsing=bool(url.query))
    except ValueError:
        raise ConfigError(f"the options of {spec!r} must read key=value&key=value") from None
    options: dict[str, str] = {}
    for key, value in pairs:
        if key in ("api_key", "key", "token"):
            raise ConfigError(
                f"the spec must not carry the API key ({key}=...): a spec is shown in tables, logs and recordings; "
                f"export it as ${API_KEY_ENV_VAR}, or name another variable with api_key_env=NAME"
            )
        if key not in _OPTIONS:
            raise ConfigError(f"unknown openai policy option {key!r}; choose from {', '.join(_OPTIONS)}")
        if key in options:
            raise ConfigError(f"openai policy option {key!r} is given twice in {spec!r}")
        options[key] = value
    kwargs: dict[str, Any] = {"base_url": urlunsplit((url.scheme, url.netloc, url.path, "", "")), "model": ""}
    for key, value in options.items():
        if key in _INT_OPTIONS:
            kwargs[key] = _parse_number(key, value, int)
        elif key in _FLOAT_OPTIONS:
            kwargs[key] = _parse_number(key, value, float)
        elif key == "seed":
            kwargs[key] = seed if value == "auto" else _parse_number(key, value, int, "an int or 'auto'")
        elif key == "stop":
            if value not in ("0", "1", "true", "false"):
                raise ConfigError(f"openai policy option 'stop' must be 0 or 1, got {value!r}")
            kwargs[key] = value in ("1", "true")
        else:
            kwargs[key] = value
    return OpenAISettings(**kwargs)


def _parse_number(key: str, value: str, kind: type, rule: str | None = None) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"openai policy option {key!r} must be {rule or kind.__name__}, got {value!r}") from None


def chat_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The env's context as chat messages: system, user and assistant as they are; the env's tool results (role
    ``tool``, plain text that answers no OpenAI-style tool call, which would need a ``tool_call_id``) as user
    messages."""
    out = []
    for m in messages:
        role = m.get("role")
        out.append({"role": role if role in ("system", "user", "assistant") else "user", "content": str(m["content"])})
    return out


def _restore_stop(text: str, finish_reason: object, stop_reason: object) -> str:
    """Put back the closing tag that the server cut at (OpenAI-style servers leave the stop string out).

    vLLM says which string matched (``stop_reason``); other servers do not, so a turn that stopped inside an open
    ``<tool_call>`` or ``<answer>`` block gets that block's closing tag. (A model that ended its turn itself inside
    an open block is then closed too: such servers cannot tell the two apart.)
    """
    if finish_reason != "stop":
        return text
    if isinstance(stop_reason, str):
        return text + stop_reason if stop_reason in STOP_STRINGS else text
    opened = max(("tool_call", "answer"), key=lambda tag: text.rfind(f"<{tag}>"))
    start = text.rfind(f"<{opened}>")
    if start >= 0 and f"</{opened}>" not in text[start:]:
        return text + f"</{opened}>"
    return text


def _retry_after(response: Any) -> float | None:
    """A server's ``Retry-After`` (seconds, or ``retry-after-ms``), if it sent a usable one."""
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name)) * scale
        except (TypeError, ValueError):
            continue
        if 0 <= value <= _MAX_RETRY_AFTER_S:
            return value
    return None


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as err:
        raise ImportError(
            f"the openai policy needs the openai client, which is not installed ({err}). "
            "Install the extra: pip install 'agemem-gym[openai]'"
        ) from err
    return openai


class OpenAIPolicy:
    """A served chat model as a policy: ``reset(info)`` / ``act(observation, info)`` one episode at a time, or
    :meth:`episode` for many at once (what ``agemem-eval`` does, ``concurrency`` at a time).

    Args:
        settings: The endpoint and sampling options.
        name: Shown in tables (default ``"openai:<base_url>?model=<model>"``).

    >>> policy = OpenAIPolicy(parse_spec("http://127.0.0.1:8000/v1?model=m&concurrency=4"))
    >>> policy.name, policy.concurrency
    ('openai:http://127.0.0.1:8000/v1?model=m', 4)
    """

    def __init__(self, settings: OpenAISettings, *, name: str | None = None) -> None:
        self._openai = _import_openai()
        self.settings = settings
        self.name = name or f"openai:{settings.base_url}?model={settings.model}"
        self.concurrency = settings.concurrency
        # By event loop: an async client belongs to the loop it was made in. The loop is kept beside its client, so
        # its id cannot be reused by a new loop while the entry exists.
        self._clients: dict[int, tuple[asyncio.AbstractEventLoop, Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._current: OpenAIEpisode | None = None
        self._episodes = 0
        self._jitter = random.Random(0)  # the jitter changes only when a retry happens, never what is sampled

    # ---- the one-at-a-time policy protocol (Policy) ----

    @property
    def usage(self) -> TokenUsage | None:
        """The current episode's token usage (None before the first :meth:`reset`)."""
        return self._current.usage if self._current is not None else None

    def reset(self, info: Mapping[str, Any]) -> None:
        """Start the next episode (its position, for ``seed``, is how many episodes this policy has started)."""
        self._current = self.episode(self._episodes)
        self._current.reset(info)
        self._episodes += 1

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        """One turn, waiting for the server (from synchronous code; in async code, await an episode's ``act``)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "OpenAIPolicy.act blocks; inside a running event loop use `await policy.episode(i).act(obs, info)`"
            )
        if self._current is None:
            self.reset(info)
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        assert self._current is not None
        return self._loop.run_until_complete(self._current.act(observation, info))

    def close(self) -> None:
        """Close the HTTP clients (and the private event loop of :meth:`act`)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.run_until_complete(self.aclose())
            self._loop.close()
        self._loop = None
        self._clients.clear()

    # ---- many episodes at once (ConcurrentPolicy) ----

    def episode(self, index: int) -> OpenAIEpisode:
        """A fresh episode at position ``index`` of the task list (its request seeds depend on it alone)."""
        return OpenAIEpisode(self, index)

    async def aclose(self) -> None:
        """Close the HTTP client of the running event loop."""
        entry = self._clients.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            await entry[1].close()

    # ---- one request ----

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(id(loop))
        if entry is not None and entry[0] is loop:
            return entry[1]
        key = os.environ.get(self.settings.api_key_env)
        if not key:
            log.debug("$%s is not set: sending a placeholder key", self.settings.api_key_env)
        client = self._openai.AsyncOpenAI(
            base_url=self.settings.base_url,
            api_key=key or _PLACEHOLDER_KEY,
            max_retries=0,  # retried below, with this module's backoff, so that the rules are ours and tested
            timeout=self.settings.timeout,
        )
        self._clients[id(loop)] = (loop, client)
        return client

    async def complete(self, messages: Sequence[Mapping[str, Any]], *, seed: int | None = None) -> tuple[str, Any]:
        """The assistant's text for ``messages`` and the response's ``usage`` (the raw object, possibly None).

        Raises:
            EndpointError: The request failed for a non-transient reason, or every retry failed.
        """
        s = self.settings
        kwargs: dict[str, Any] = {
            "model": s.model,
            "messages": chat_messages(messages),
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        if s.stop:
            kwargs["stop"] = list(STOP_STRINGS)
        if seed is not None:
            kwargs["seed"] = seed
        response = await self._create(kwargs)
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise EndpointError(f"{s.base_url} answered without any choice (model {s.model!r}); is it a chat endpoint?")
        choice = choices[0]
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None)
        text = content if isinstance(content, str) else ""  # untrusted: no text is an empty turn, not a crash
        text = _restore_stop(text, getattr(choice, "finish_reason", None), getattr(choice, "stop_reason", None))
        return text, getattr(response, "usage", None)

    async def _create(self, kwargs: dict[str, Any]) -> Any:
        openai, s = self._openai, self.settings
        for attempt in range(s.retries + 1):
            try:
                return await self._client().chat.completions.create(**kwargs)
            except openai.APIStatusError as err:
                status = err.status_code
                if not (status in (408, 429) or status >= 500) or attempt == s.retries:
                    raise EndpointError(_status_message(s, status, err, attempt)) from None
                delay = _retry_after(err.response)
                what = f"HTTP {status}"
            except openai.APIConnectionError as err:  # refused, reset, DNS, and timeouts (APITimeoutError)
                if attempt == s.retries:
                    raise EndpointError(
                        f"{s.base_url} could not be reached ({type(err).__name__}: {err}) after {attempt + 1} "
                        f"attempt(s); is the server running there? (timeout={s.timeout:g} s, retries={s.retries})"
                    ) from None
                delay, what = None, type(err).__name__
            except (openai.OpenAIError, ValueError) as err:  # a 200 whose body is not JSON, or not a completion
                raise EndpointError(
                    f"{s.base_url} sent a response that is no chat completion ({type(err).__name__}: {err})"[:600]
                ) from None
            if delay is None:
                delay = min(_MAX_BACKOFF_S, s.backoff * 2**attempt) * (1 - 0.25 * self._jitter.random())
            log.warning("%s from %s; retry %d of %d in %.2f s", what, s.base_url, attempt + 1, s.retries, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises


def _status_message(s: OpenAISettings, status: int, err: Any, attempt: int) -> str:
    body = str(getattr(err, "message", err))[:500]
    hint = {
        400: "the request was refused; a prompt longer than the server's context window also reads so (vLLM: "
        "raise --max-model-len; llama.cpp: --n_ctx)",
        401: f"the key was refused; export the right one as ${s.api_key_env}",
        403: f"the key was refused; export the right one as ${s.api_key_env}",
        404: f"is the base URL the one that ends in /v1, and is {s.model!r} a model the server lists at /models?",
        422: "the server rejected an option; try without seed= or stop=",
    }.get(status, f"still failing after {attempt + 1} attempt(s)")
    return f"{s.base_url} answered HTTP {status} for model {s.model!r}: {body} ({hint})"


class OpenAIEpisode:
    """One episode's turns and token usage; created by :meth:`OpenAIPolicy.episode`."""

    def __init__(self, policy: OpenAIPolicy, index: int) -> None:
        self.policy = policy
        self.index = index
        self.usage: TokenUsage | None = TokenUsage()
        self._turn = 0

    def reset(self, info: Mapping[str, Any]) -> None:
        """Start over: no turns, no tokens."""
        self.usage, self._turn = TokenUsage(), 0

    async def act(self, observation: str, info: Mapping[str, Any]) -> str:
        """One agent turn for the context in ``info["messages"]``."""
        seed = self.policy.settings.request_seed(self.index, self._turn)
        self._turn += 1
        text, usage = await self.policy.complete(info["messages"], seed=seed)
        assert self.usage is not None
        self.usage.add(getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))
        return text


def from_spec(spec: str, env: Any = None, *, seed: int = 0) -> OpenAIPolicy:
    """The ``openai`` entry point of :data:`~agemem_gym.evaluation.agents.POLICY_PLUGINS`: ``make_policy("openai:<spec>")``.

    Raises:
        ConfigError: The spec is malformed (see :func:`parse_spec`).
        ImportError: The ``openai`` client is not installed (``pip install 'agemem-gym[openai]'``).
    """
    settings = parse_spec(spec, seed=seed)
    return OpenAIPolicy(settings, name=f"openai:{spec.strip()}")
