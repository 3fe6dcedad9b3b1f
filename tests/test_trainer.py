"""The GRPO trainer end to end on a contract-following fake env with the tiny model (CPU, seconds)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch

from agemem_gym.trainers import rollouts
from agemem_gym.trainers.grpo import (
    Args,
    Trajectory,
    check_args,
    episode_metrics,
    evaluate_checkpoint,
    main,
    parse_args,
    preset,
    rollout,
)
from agemem_gym.trainers.models import tiny_model, tiny_tokenizer
from agemem_gym.trainers.policy import Sampling, Turn, encode_chat

from .grpo_fakes import TRUNCATION_PENALTY, FakeMemoryEnv, register_fake_env, torch_threads

ENV_ID = register_fake_env()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and do not stall when other jobs share the cores."""
    with torch_threads(1):
        yield


def _args(tmp_path: Path, name: str, **overrides: Any) -> Args:
    """The tiny preset on the fake env with the dense "char" reward, small enough for a unit test."""
    settings: dict[str, Any] = dict(
        env_id=ENV_ID,
        env_kwargs=json.dumps({"reward": "char"}),
        output_dir=str(tmp_path),
        run_name=name,
        num_updates=1,
        groups_per_update=2,
        group_size=3,
        max_new_tokens=12,
        micro_batch_size=5,
        update_epochs=2,
        progress=False,
        plot=False,
    )
    return preset("tiny", **{**settings, **overrides})


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_one_update_changes_the_model_with_zero_initial_kl(tmp_path: Path) -> None:
    """One update runs in seconds: finite loss, KL exactly 0 at the first micro-step, and the weights move."""
    metrics = main(_args(tmp_path, "one"))
    assert metrics["update"] == 1
    assert all(
        torch.isfinite(torch.tensor(metrics[k])) for k in ("loss/loss", "loss/policy", "loss/kl", "loss/grad_norm")
    )
    assert metrics["loss/kl_first_microbatch"] == 0.0
    assert metrics["loss/grad_norm"] > 0
    assert metrics["rollout/episodes"] == 6 and metrics["rollout/turns_per_episode"] == 6
    after = _weights(tmp_path / "one" / "checkpoint.pt")
    before = tiny_model(seed=1).state_dict()
    assert any(not torch.equal(after[k], before[k]) for k in before)
    rows = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1
    assert {k.split("/")[0] for k in rows[0] if "/" in k} >= {"reward", "memory", "rollout", "loss", "perf"}


def test_step_averaging_and_population_std_train(tmp_path: Path) -> None:
    """loss_average="step" (Eq. 6) and adv_std="population" run through a whole update: finite loss, nonzero gradient."""
    metrics = main(_args(tmp_path, "step", loss_average="step", adv_std="population", update_epochs=1))
    assert torch.isfinite(torch.tensor(metrics["loss/loss"])) and metrics["loss/grad_norm"] > 0


def test_resume_reproduces_the_next_update_bit_for_bit(tmp_path: Path) -> None:
    """Stopping after update 1 and resuming gives exactly the weights and optimizer of an uninterrupted 2-update run."""
    main(_args(tmp_path, "straight", num_updates=2))
    main(_args(tmp_path, "split", num_updates=1))
    resumed = main(_args(tmp_path, "ignored", num_updates=2, resume=str(tmp_path / "split" / "checkpoint.pt")))
    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", map_location="cpu", weights_only=True)
    split = torch.load(tmp_path / "split" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert split["update"] == straight["update"] == 2
    for key, value in straight["model"].items():
        assert torch.equal(split["model"][key], value), key
    for a, b in zip(straight["optimizer"]["state"].values(), split["optimizer"]["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    last = json.loads((tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()[-1])
    assert resumed["reward/mean"] == last["reward/mean"] and resumed["loss/loss"] == last["loss/loss"]
    assert not (tmp_path / "ignored").exists()  # a resumed run continues in its checkpoint's folder


def test_lora_update_trains_only_adapters(tmp_path: Path) -> None:
    """Under LoRA the checkpoint holds only adapters, they move, and the reference (adapters off) starts at KL 0."""
    metrics = main(_args(tmp_path, "lora", lora_rank=4, learning_rate=1e-2))
    assert metrics["loss/kl_first_microbatch"] == 0.0
    saved = _weights(tmp_path / "lora" / "checkpoint.pt")
    assert saved and all(k.endswith(("lora_A", "lora_B")) for k in saved)
    assert any(v.abs().sum() > 0 for k, v in saved.items() if k.endswith("lora_B"))  # B starts at 0
    assert metrics["loss/kl"] >= 0


def test_zero_spread_groups_are_counted_and_can_be_skipped(tmp_path: Path) -> None:
    """With the sparse reward a random model scores 0 everywhere: every group has zero spread and nothing trains."""
    env = json.dumps({"reward": "secret"})
    kept = main(_args(tmp_path, "kept", env_kwargs=env))
    skipped = main(_args(tmp_path, "skipped", env_kwargs=env, skip_zero_spread=True))
    for m in (kept, skipped):
        assert m["reward/std"] == 0.0 and m["rollout/zero_spread_groups"] == 2
        assert m["loss/grad_norm"] == 0.0  # A = 0 and KL = 0 at the first update: no gradient at all
    assert kept["rollout/samples"] == 36 and skipped["rollout/samples"] == 1  # one placeholder at weight 0


def test_rollout_groups_share_their_start_and_keep_exact_ids() -> None:
    """K envs of a group reset with one task and seed; each step keeps the exact prompt ids of info["messages"]."""
    model, tok = tiny_model(seed=0), tiny_tokenizer()
    envs = [FakeMemoryEnv(reward="char") for _ in range(4)]
    torch.manual_seed(0)
    trajs = rollout(
        model,
        tok,
        envs,
        ["task-1", "task-3"],
        [11, 12],
        Sampling(max_new_tokens=6),
        max_prompt_tokens=4096,
        max_turns=50,
        gen_batch_size=3,
    )
    assert [e.resets for e in envs] == [[(11, "task-1")]] * 2 + [[(12, "task-3")]] * 2
    assert [t.group for t in trajs] == [0, 0, 1, 1]
    first = trajs[0].steps[0]
    assert first.prompt_ids == encode_chat(tok, FakeMemoryEnv().reset(options={"task_id": "task-1"})[1]["messages"])[0]
    assert trajs[0].steps[0].prompt_ids == trajs[1].steps[0].prompt_ids  # shared start
    for t in trajs:
        assert t.reward == pytest.approx(t.reward_sum) and t.episode["R"] == t.reward
        assert all(len(s.response_ids) == len(s.logprobs) for s in t.steps)
    assert episode_metrics(trajs)["rollout/episodes"] == 4


def test_turn_cap_ends_an_episode_through_the_env() -> None:
    """The trainer's max_turns cap ends an episode the env did not end by calling the env's truncate(): R(τ) is the
    env's episode total, the closing step's truncation penalty included."""
    model, tok = tiny_model(seed=0), tiny_tokenizer()
    env = FakeMemoryEnv(reward="char")
    trajs = rollout(
        model,
        tok,
        [env],
        ["task-0"],
        [0],
        Sampling(max_new_tokens=4),
        max_prompt_tokens=64,
        max_turns=2,
        gen_batch_size=8,
    )
    assert trajs[0].capped and not trajs[0].truncated and trajs[0].turns == 2
    assert env.truncations == ["turn_cap"]
    assert trajs[0].reward == trajs[0].reward_sum == trajs[0].episode["R"] == env.total
    assert trajs[0].episode["penalty"] == TRUNCATION_PENALTY
    assert trajs[0].prompt_cut == 2  # both prompts were longer than 64 tokens and kept their tail


NEVER_ANSWERS = (
    '<think>Look it up.</think><tool_call>[{"name": "Retrieve_memory", "arguments": {"query": "anything"}}]</tool_call>'
)


def _scripted_generate(text: str) -> Any:
    """A stand-in for policy.generate whose every turn is ``text`` (the tokens are placeholders)."""

    def fake(model: Any, tokenizer: Any, prompts: list[list[int]], sampling: Sampling) -> list[Turn]:
        return [Turn(list(p), [1, 2, 3], [-0.5] * 3, text, "stop") for p in prompts]

    return fake


def test_capped_episode_gets_the_r_of_the_envs_own_truncation(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the real env a never-answering policy capped at N turns gets the R(τ) the env gives when its own limit
    truncates it at N turns (P_rounds and w_task·P_no-answer included), not the bare sum of its step rewards."""
    monkeypatch.setattr(rollouts, "generate", _scripted_generate(NEVER_ANSWERS))
    episode = {"stage1_distractors": 0, "stage2_paragraphs": 1, "max_tool_rounds": 5}
    capped_env = gym.make("AgeMem-Synthetic-v0", n_tasks=2, episode=episode)
    limited_env = gym.make("AgeMem-Synthetic-v0", n_tasks=2, episode={**episode, "max_steps": 3})
    task = capped_env.unwrapped.suite.task_ids[0]  # type: ignore[attr-defined]
    model, tok = tiny_model(seed=0), tiny_tokenizer()

    def play(env: gym.Env, max_turns: int | None) -> Trajectory:
        return rollout(
            model, tok, [env], [task], [0], Sampling(), max_prompt_tokens=4096, max_turns=max_turns, gen_batch_size=8
        )[0]

    capped, limited = play(capped_env, 3), play(limited_env, None)
    assert capped.capped and not capped.truncated and capped.episode["truncation_reason"] == "turn_cap"
    assert limited.truncated and not limited.capped and limited.episode["truncation_reason"] == "max_steps"
    assert capped.turns == limited.turns == 3
    assert capped.reward == pytest.approx(limited.reward, abs=1e-12)
    assert capped.reward == pytest.approx(capped_env.unwrapped.episode_reward(), abs=1e-12)  # type: ignore[attr-defined]
    with pytest.raises(gym.error.ResetNeeded):  # the env itself has ended the episode
        capped_env.step(NEVER_ANSWERS)
    # The running sum of the three turns is what the old cap reported; the env adds P_rounds and w_task·P_no-answer.
    replay = gym.make("AgeMem-Synthetic-v0", n_tasks=2, episode=episode)
    replay.reset(seed=0, options={"task_id": task})
    running = sum(float(replay.step(NEVER_ANSWERS)[1]) for _ in range(3))
    base = replay.unwrapped
    closing = base.penalties.rounds + base.weights.task * base.penalties.no_answer  # type: ignore[attr-defined]
    assert closing == pytest.approx(-1 - 1 / 3)
    assert capped.reward == pytest.approx(running + closing, abs=1e-12)
    metrics = episode_metrics([capped, limited])
    assert metrics["rollout/capped_episodes"] == 1 and metrics["rollout/truncated_episodes"] == 1
    assert metrics["reward/task_score"] == -1.0  # both episodes are in the mean, each with P_no-answer
    assert metrics["memory/tool/Retrieve_memory"] == 3.0


def test_a_cap_needs_an_env_that_can_truncate() -> None:
    """A turn cap on an env without truncate(reason) is refused before any episode is played."""

    class NoTruncate(FakeMemoryEnv):
        truncate = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match="'max_turns' ends capped episodes through"):
        rollout(
            tiny_model(seed=0),
            tiny_tokenizer(),
            [NoTruncate()],
            ["task-0"],
            [0],
            Sampling(),
            max_prompt_tokens=64,
            max_turns=2,
            gen_batch_size=8,
        )


def test_capped_episodes_are_counted_and_kept_in_every_mean(tmp_path: Path) -> None:
    """With a cap below the fake env's episode length every episode is capped, in training and in evaluation, and
    each still counts in the reward, task, memory and tool means with the env's truncation penalty."""
    m = main(_args(tmp_path, "capped", max_turns=3, update_epochs=1, eval_tasks=2))
    assert m["rollout/capped_episodes"] == 6 and m["rollout/turns_per_episode"] == 3
    assert m["rollout/truncated_episodes"] == 0 and m["eval/rollout/capped_episodes"] == 2
    for key in ("reward/task_score", "reward/R_memory", "memory/f1", "memory/context_tokens_peak", "eval/memory/f1"):
        assert math.isfinite(m[key]), key
    assert m["reward/penalty"] == m["eval/reward/penalty"] == TRUNCATION_PENALTY
    assert m["reward/max"] < 0  # three turns of the "char" reward (at most 1/3 each) and the penalty of -1


def test_outputs_and_evaluation_of_a_checkpoint(tmp_path: Path) -> None:
    """A run writes metrics, curves and a checkpoint; evaluate_checkpoint replays it on N tasks, reproducibly."""
    main(_args(tmp_path, "out", plot=True, eval_tasks=2))
    run = tmp_path / "out"
    assert (run / "curves.png").stat().st_size > 0 and (run / "args.json").is_file()
    sample = json.loads((run / "samples.jsonl").read_text().splitlines()[0])
    assert sample["update"] == 1 and len(sample["turns"]) == 6 and isinstance(sample["turns"][0], str)
    assert json.loads((run / "eval.json").read_text())["eval/rollout/episodes"] == 2
    result = evaluate_checkpoint(run / "checkpoint.pt", num_tasks=3)
    assert result["eval/rollout/episodes"] == 3 and "eval/memory/f1" in result
    sampled = [evaluate_checkpoint(run / "checkpoint.pt", num_tasks=2, greedy=False) for _ in range(2)]
    assert sampled[0] == sampled[1]  # sampled evaluation is seeded: the same checkpoint scores the same twice


def test_eval_every_logs_the_starting_policy_and_leaves_training_unchanged(tmp_path: Path) -> None:
    """eval_every writes eval/ metrics at update 0 and every N updates; sampled evaluation does not move training."""
    plain = main(_args(tmp_path, "plain", num_updates=2))
    evaled = main(_args(tmp_path, "evaled", num_updates=2, eval_tasks=2, eval_every=1, eval_greedy=False))
    rows = [json.loads(line) for line in (tmp_path / "evaled" / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == [0, 1, 2]
    assert all(k == "update" or k.startswith("eval/") for k in rows[0])  # the starting policy, before any update
    assert all(r["eval/rollout/episodes"] == 2 for r in rows) and "reward/mean" in rows[1]
    assert evaled["loss/loss"] == plain["loss/loss"] and evaled["reward/mean"] == plain["reward/mean"]
    a, b = _weights(tmp_path / "plain" / "checkpoint.pt"), _weights(tmp_path / "evaled" / "checkpoint.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_presets_and_overrides() -> None:
    """--preset picks the defaults and any other flag overrides them; nothing derived is written into Args."""
    args = parse_args(["--preset", "tiny", "--num-updates", "7", "--env-kwargs", "{}"])
    assert args.model == "tiny" and args.num_updates == 7 and args.env_kwargs == "{}" and args.preset == "tiny"
    assert parse_args([]) == Args()
    assert parse_args(["--preset", "demo"]).model == "smollm2"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"group_size": 1}, "'group_size' must be >= 2"),
        ({"temperature": 0.0}, "'temperature' must be > 0"),
        ({"env_kwargs": "[1]"}, "'env_kwargs' must be a JSON object"),
        ({"eval_every": -1}, "'eval_every' must be >= 0"),
        ({"groups_per_update": 3}, "must be divisible by the number of ranks"),
        ({"max_turns": 0}, "'max_turns' must be None"),
        ({"adv_std": "biased"}, "'adv_std' must be 'sample'"),
        ({"loss_average": "sequence"}, "'loss_average' must be 'trajectory', 'token' or 'step'"),
    ],
)
def test_bad_settings_raise_with_the_rule(override: dict[str, Any], message: str) -> None:
    """Settings that cannot work raise ValueError naming the rule and the value."""
    with pytest.raises(ValueError, match=message):
        check_args(Args(**override), world_size=2)


@pytest.mark.slow
def test_grpo_learns_an_easy_dense_reward(tmp_path: Path) -> None:
    """Seeded: on the fake env's "char" reward the tiny model's mean reward climbs far above chance in 12 updates."""
    args = _args(
        tmp_path,
        "learn",
        env_kwargs=json.dumps({"reward": "char", "max_tool_rounds": 0}),
        num_updates=12,
        group_size=4,
        max_new_tokens=8,
        learning_rate=2e-2,
        micro_batch_size=64,
        beta=0.01,
        checkpoint_every=0,
    )
    main(args)
    rows = [json.loads(line) for line in (tmp_path / "learn" / "metrics.jsonl").read_text().splitlines()]
    rewards = [r["reward/mean"] for r in rows]
    # Chance is 1/259 per byte (~0.004). Seeds 1-4 went from <= 0.01 (first 3 updates) to >= 0.3 (last 3); the
    # margin asserted is half the smallest gain seen, so it fails on a broken update, not on seed noise.
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert last - first > 0.15, rewards


@pytest.mark.slow
def test_ddp_two_cpu_ranks(tmp_path: Path) -> None:
    """Under torchrun with two CPU ranks (gloo), each rank plays its groups (and eval tasks); metrics cover all."""
    script = tmp_path / "ddp_run.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, sys
            sys.path.insert(0, {str(REPO)!r})
            from tests.grpo_fakes import register_fake_env
            from agemem_gym.trainers.grpo import preset, main
            m = main(preset("tiny", env_id=register_fake_env(), env_kwargs=json.dumps({{"reward": "char"}}),
                            output_dir={str(tmp_path)!r}, run_name="ddp", num_updates=1, groups_per_update=2,
                            group_size=2, max_new_tokens=6, progress=False, plot=False, device="cpu",
                            loss_average="token", eval_tasks=2, eval_every=1))
            print("EPISODES=" + str(m["rollout/episodes"]) + ";EVAL=" + str(m["eval/rollout/episodes"]) + ";")
            """
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29533",
        str(script),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("EPISODES=4.0;EVAL=2.0;") == 2  # eval: one task per rank, metrics over both
    assert (tmp_path / "ddp" / "checkpoint.pt").is_file()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_one_update_on_cuda_with_bf16_and_lora(tmp_path: Path) -> None:
    """On CUDA: bf16 autocast, LoRA over a bf16 base, gradient checkpointing, and peak memory from CUDA."""
    metrics = main(_args(tmp_path, "cuda", device="cuda", lora_rank=4, gradient_checkpointing=True))
    assert metrics["loss/kl_first_microbatch"] == 0.0
    assert torch.isfinite(torch.tensor(metrics["loss/loss"]))
    assert 0 < metrics["perf/peak_mem_mb"] < 2000


def test_fake_env_contract() -> None:
    """The fake env honours the contract the trainer relies on: shared starts and R equal to the summed rewards."""
    env = gym.make(ENV_ID, reward="secret")
    _, info = env.reset(seed=0, options={"task_id": "task-2"})
    _, info2 = gym.make(ENV_ID).reset(seed=5, options={"task_id": "task-2"})
    assert info["messages"] == info2["messages"] and info["tools"]
    total, done = 0.0, False
    while not done:
        _, r, term, trunc, info = env.step("<think>x</think><answer>ok</answer>")
        total += r
        done = term or trunc
    assert info["episode"]["R"] == pytest.approx(total)


def test_rollout_on_the_real_env_survives_issue_15_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy that writes the issue's crashing text (huge ints and deep brackets in string arguments, lone
    surrogates) plays whole episodes: every prompt after it still encodes, and the errors are counted."""
    import agemem_gym  # noqa: F401  (registers the ids)
    from agemem_gym.trainers.policy import Turn

    bad = [
        '<tool_call>{"name": "Add_memory", "arguments": "{\\"content\\": \\"x\\", \\"n\\": ' + "1" * 4301 + '}"}'
        "</tool_call>",
        '<tool_call>{"name": "Add_memory", "arguments": "' + "[" * 3000 + '"}</tool_call>',
        '<tool_call>{"name": "Add_memory", "arguments": {"content": "bad \\ud800 text"}}</tool_call>',
        "<answer>raw \ud800</answer>",
    ]
    calls = {"n": 0}

    def scripted(model: Any, tokenizer: Any, prompts: list[list[int]], sampling: Sampling) -> list[Turn]:
        calls["n"] += 1
        return [Turn(list(p), [1], [0.0], bad[(calls["n"] + i) % len(bad)], "stop") for i, p in enumerate(prompts)]

    monkeypatch.setattr(rollouts, "generate", scripted)
    envs = [gym.make("AgeMem-Synthetic-v0", episode={"max_tool_rounds": 2}) for _ in range(2)]
    task = envs[0].unwrapped.suite.task_ids[0]  # type: ignore[attr-defined]
    trajs = rollout(
        tiny_model(seed=0),
        tiny_tokenizer(),
        envs,
        [task],
        [0],
        Sampling(max_new_tokens=4),
        max_prompt_tokens=512,
        max_turns=20,
        gen_batch_size=2,
    )
    for t in trajs:
        assert t.truncated and t.action_errors == t.turns == 3 and t.episode["error_counts"]


def _planted_checkpoint(tmp_path: Path, **saved: Any) -> Path:
    """A checkpoint of the tiny model whose saved args carry ``saved`` (as a file from elsewhere might)."""
    import dataclasses

    from agemem_gym.trainers.models import load_model

    model, _ = load_model("tiny", seed=0)
    args = dataclasses.asdict(Args(model="tiny", device="cpu"))
    path = tmp_path / "checkpoint.pt"
    torch.save({"args": {**args, **saved}, "model": model.state_dict()}, path)
    return path


def test_a_checkpoint_cannot_turn_downloads_on(tmp_path: Path) -> None:
    """A saved allow_download=True is ignored; only the caller's own override turns downloads on."""
    from agemem_gym.trainers.grpo import load_checkpoint_model

    path = _planted_checkpoint(tmp_path, allow_download=True)
    assert load_checkpoint_model(path)[2].allow_download is False
    assert load_checkpoint_model(path, allow_download=True)[2].allow_download is True


def test_a_checkpoint_cannot_make_evaluation_import_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A saved env_id of "module:id" is refused by evaluate_checkpoint unless trust_remote_module=True."""
    from agemem_gym.errors import DataError

    marker = tmp_path / "imported"
    (tmp_path / "planted_by_checkpoint.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = _planted_checkpoint(tmp_path, env_id=f"planted_by_checkpoint:{ENV_ID}")
    with pytest.raises(DataError, match=r"module 'planted_by_checkpoint' is not imported"):
        evaluate_checkpoint(path, num_tasks=1)
    assert not marker.exists()
    result = evaluate_checkpoint(path, num_tasks=1, trust_remote_module=True, max_new_tokens=4)
    assert marker.exists() and result["eval/rollout/episodes"] == 1


def test_a_checkpoint_with_unknown_settings_names_them(tmp_path: Path) -> None:
    """Saved settings the trainer does not know are a DataError naming them, not a TypeError from Args."""
    from agemem_gym.errors import DataError
    from agemem_gym.trainers.grpo import load_checkpoint_model

    with pytest.raises(DataError, match=r"saved settings \['no_such_setting'\] are not fields of Args"):
        load_checkpoint_model(_planted_checkpoint(tmp_path, no_such_setting=1))
