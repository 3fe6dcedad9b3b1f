"""AgeMem-PDDL-v0 and its STRIPS engine: generated blocksworld/gripper problems, PDDL files, planner policies."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401  (registers the ids)
from agemem_gym.envs.pddl import (
    BLOCKSWORLD_PDDL,
    PDDLEnv,
    PDDLGreedyPolicy,
    PDDLPlannerMemoryPolicy,
    PDDLPlannerPolicy,
    PDDLRandomPolicy,
    generate_problem,
)
from agemem_gym.envs.strips import (
    PDDLError,
    Task,
    astar,
    load_domain,
    load_problem,
    parse_domain,
    parse_problem,
    validate_plan,
)
from agemem_gym.errors import ConfigError
from agemem_gym.textenv import evaluate_text_game

# Three blocks, b1 on b2, b3 on the table; goal: the tower b1 / b2 / b3. Hand-checked: b1 must leave b2 and come
# back (4 actions), b2 must move onto b3 (2 actions), so 6 actions are optimal, and the plan below is one.
HAND_PROBLEM = """; a hand-checked problem
(define (problem tower3) (:domain blocksworld)
  (:objects b1 b2 b3 - block)
  (:init (arm-empty) (on b1 b2) (on-table b2) (on-table b3) (clear b1) (clear b3))
  (:goal (and (on b1 b2) (on b2 b3))))
"""
HAND_PLAN = ["unstack b1 from b2", "put down b1", "pick up b2", "stack b2 on b3", "pick up b1", "stack b1 on b2"]


def act(action: str) -> str:
    return f"<think>go</think><answer>{action}</answer>"


@pytest.fixture
def hand_files(tmp_path: Path) -> tuple[Path, Path]:
    domain = tmp_path / "blocksworld.pddl"
    domain.write_text(BLOCKSWORLD_PDDL)
    problems = tmp_path / "blocksworld"
    problems.mkdir()
    (problems / "tower3.pddl").write_text(HAND_PROBLEM)
    return domain, problems


def play(env: gym.Env[str, str], policy: object, seed: int) -> tuple[list[float], dict[str, object]]:
    obs, info = env.reset(seed=seed)
    policy.reset(info)  # type: ignore[attr-defined]
    rewards = []
    while True:
        obs, r, te, tr, info = env.step(policy.act(obs, info))  # type: ignore[attr-defined]
        rewards.append(float(r))
        if te or tr:
            return rewards, info


# ---- the env contract ----


def test_check_env_passes() -> None:
    """Gymnasium's env checker accepts AgeMem-PDDL-v0."""
    from gymnasium.utils.env_checker import check_env

    check_env(gym.make("AgeMem-PDDL-v0").unwrapped, skip_render_check=True)


def test_first_observation_states_goal_and_state() -> None:
    """The first observation names the task, the goal (AgentBoard's wording) and the facts, as sentences."""
    env = PDDLEnv(domains=("blocksworld",), levels={"blocksworld": (3,)})
    _, info = env.reset(options={"task_id": "blocksworld:3:5"})
    text = info["messages"][-1]["content"]
    assert text.startswith("Task blocksworld:3:5. The goal is to satisfy the following conditions: ")
    assert "\nObservation: " in text and "Your arm is empty." in text
    assert "Blocksworld: blocks stand on the table" in info["messages"][0]["content"]


def test_seeded_rollouts_are_identical() -> None:
    """Two seeded rollouts of the same policy give identical observations and rewards; another seed differs."""

    def run(seed: int) -> list[tuple[str, float]]:
        env = gym.make("AgeMem-PDDL-v0")
        obs, info = env.reset(seed=seed)
        policy = PDDLRandomPolicy(env.unwrapped, seed=1)
        out = [(obs, 0.0)]
        for _ in range(12):
            obs, r, te, tr, info = env.step(policy.act(obs, info))
            out.append((obs, float(r)))
            if te or tr:
                break
        return out

    assert run(7) == run(7)
    assert run(7)[0] != run(8)[0]


def test_get_state_set_state_replays_exactly() -> None:
    """Restoring a snapshot (the fact set and counters) replays later steps exactly, rewards included."""
    env = PDDLEnv()
    env.reset(seed=4)
    policy = PDDLRandomPolicy(env, seed=2)
    env.step(policy.act("", {}))
    state = env.get_state()
    tail = [policy.act("", {}) for _ in range(1)]  # one action chosen now, replayed below
    tail += [act("check valid actions"), act("look around"), act("fly")]
    first = [env.step(a)[:4] for a in tail]
    env.set_state(state)
    assert [env.step(a)[:4] for a in tail] == first


def test_task_ids_and_draws() -> None:
    """suite.task_ids lists '<domain>:<size>:<seed>'; a task id plays that problem; unknown ids are ConfigErrors."""
    env = gym.make("AgeMem-PDDL-v0", n_tasks=3, levels={"blocksworld": (3, 4), "gripper": (2,)})
    ids = env.unwrapped.suite.task_ids  # type: ignore[attr-defined]
    assert ids[:3] == ("blocksworld:3:0", "blocksworld:3:1", "blocksworld:3:2") and len(ids) == 9
    obs_a, _ = env.reset(seed=0, options={"task_id": "gripper:2:1"})
    obs_b, _ = env.reset(seed=5, options={"task_id": "gripper:2:1"})
    assert obs_a == obs_b and "Task gripper:2:1." in obs_a
    for bad in ("gripper:9:1", "sokoban:3:1", "blocksworld:3", "blocksworld:3:x"):
        with pytest.raises(ConfigError, match="task_id must be"):
            env.reset(options={"task_id": bad})
    with pytest.raises(ConfigError, match=r"'levels\['gripper'\]' must be a non-empty tuple of sizes in 1..12"):
        PDDLEnv(levels={"gripper": (0,)})


def test_generated_problems_are_deterministic_and_start_with_no_goal_condition() -> None:
    """generate_problem is a function of (domain, size, seed); no goal condition holds in its initial state."""
    assert generate_problem("blocksworld", 5, 3) == generate_problem("blocksworld", 5, 3)
    assert generate_problem("blocksworld", 5, 3) != generate_problem("blocksworld", 5, 4)
    env = PDDLEnv()
    for seed in range(40):
        env.reset(seed=seed)
        task = env.pddl.task
        assert task.satisfied(task.init) == 0 and task.goal_size >= 1
    with pytest.raises(ConfigError, match=r"'size' of a blocksworld problem must be an int in 2\.\.10, got 11"):
        generate_problem("blocksworld", 11, 0)


# ---- the hand-checked problem, through the loader ----


def test_hand_checked_blocksworld_plan_and_progress(hand_files: tuple[Path, Path]) -> None:
    """On the hand-checked problem the planner finds a 6-action plan that the engine validates, and the env's
    progress and step rewards follow the goal conditions: 0 until b2 is on b3 (1/2), then 1 at the end."""
    domain_file, problems = hand_files
    domain = load_domain(domain_file)
    task = Task.from_pddl(domain, load_problem(problems / "tower3.pddl", domain))
    plan = astar(task)
    assert plan is not None and len(plan) == len(HAND_PLAN)
    assert validate_plan(task, plan)[0]

    env = PDDLEnv(domain_file=domain_file, problem_files=problems)
    assert env.suite.task_ids == ("blocksworld:tower3",)
    env.reset(seed=0)
    shown = [env.pddl.action_text(a) for a in plan]
    assert validate_plan(task, [env.pddl.parse(t) for t in HAND_PLAN])[0]  # type: ignore[misc]
    rewards, progress = [], []
    for text in HAND_PLAN:
        _, r, te, tr, info = env.step(act(text))
        rewards.append(r)
        progress.append(info["game_info"]["progress"])
    assert rewards == [0.0, 0.0, 0.0, 0.5, 0.0, 0.5]
    assert progress == [0.0, 0.0, 0.0, 0.5, 0.5, 1.0]
    assert te and not tr and info["episode"]["success"] and info["episode"]["progress"] == 1.0
    assert info["episode"]["R"] == pytest.approx(1.0) and len(shown) == 6
    assert "The goal is satisfied." in info["messages"][-1]["content"]


def test_progress_is_the_best_share_reached(hand_files: tuple[Path, Path]) -> None:
    """Undoing a satisfied condition lowers the share but neither the progress (the best share) nor the reward (its
    increase); redoing it earns nothing again."""
    env = PDDLEnv(domain_file=hand_files[0], problem_files=hand_files[1], step_limit=6)
    env.reset(seed=0)
    for text in [*HAND_PLAN[:4], "unstack b2 from b3"]:
        _, r, te, tr, info = env.step(act(text))
    assert r == 0.0 and info["game_info"]["share"] == 0.0 and info["game_info"]["progress"] == 0.5
    _, r, te, tr, info = env.step(act("stack b2 on b3"))
    assert r == 0.0 and tr and not te and info["truncation_reason"] == "game_truncated"
    assert info["episode"]["progress"] == 0.5 and not info["episode"]["success"]
    assert info["episode"]["score"] == pytest.approx(0.5)  # the game rewards sum to the progress rate


def test_action_forms_and_game_feedback(hand_files: tuple[Path, Path]) -> None:
    """Template, PDDL and parenthesised forms name the same action; unknown and inapplicable actions leave the
    state unchanged and say why (an inapplicable one names its unmet preconditions)."""
    env = PDDLEnv(domain_file=hand_files[0], problem_files=hand_files[1])
    env.reset(seed=0)
    game = env.pddl
    assert game.parse("Stack B1 on B2.") is game.parse("stack b1 b2") is game.parse("(stack b1 b2)") is not None
    before = game.state
    _, r, _, _, info = env.step(act("pick up b2"))
    assert game.state == before and r == 0.0 and info["game_info"]["action_valid"] is False
    assert info["messages"][-1]["content"] == ("Nothing happens: you cannot pick up b2 now; it needs: b2 is clear.")
    _, _, _, _, info = env.step(act("teleport b1"))
    assert "'teleport b1' is not an action here" in info["messages"][-1]["content"] and game.state == before
    _, _, _, _, info = env.step(act("check valid actions"))
    assert info["messages"][-1]["content"] == "Valid actions are: pick up b3, unstack b1 from b2."
    assert info["game_step"] == 3 and info["action_error"] is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<answer></answer>",
        "<answer>stack stack stack</answer>",
        "<answer>(unstack b1</answer>",
        "<answer>pick up b99</answer>",
        "<answer>" + "(" * 3000 + "</answer>",
        "\ud800<answer>look around</answer>",
        "<tool_call>[{</tool_call>",
        "x" * 9000,
    ],
)
def test_hostile_text_never_raises(text: str, hand_files: tuple[Path, Path]) -> None:
    """Hostile agent text never raises: a protocol error gets feedback and a penalty; a bad game command costs a
    step and changes nothing."""
    env = PDDLEnv(domain_file=hand_files[0], problem_files=hand_files[1])
    env.reset(seed=0)
    before = env.pddl.state
    _, r, _, _, info = env.step(text)
    assert env.pddl.state == before
    assert (info["action_error"] is not None and r < 0) or (info["game_step"] == 1 and r == 0.0)
    json.dumps(info["messages"])


# ---- the loader's errors ----

_DOMAIN_ERRORS = [
    ("(define (domain d) (:predicates (p))", "line 1: expected ')' to close this '('"),
    ("(define (domain d))\n)", "line 2: expected '(' or the end of the file"),
    ("(define (domain d)\n (:requirements :adl))", "line 2: expected a supported requirement"),
    (
        "(define (domain d) (:predicates (p ?x))\n (:action a :parameters (?x)\n :effect (q ?x)))",
        "line 3: expected a declared predicate",
    ),
    (
        "(define (domain d) (:predicates (p ?x))\n (:action a :parameters (?x) :effect (p)))",
        "line 2: expected 1 argument(s) for 'p'",
    ),
    (
        "(define (domain d) (:predicates (p ?x))\n (:action a :parameters (?x)\n  :effect (forall (?y) (p ?y))))",
        "line 3: expected an atom, (not ATOM) or (and ...) in the effect of 'a'; 'forall' is not supported",
    ),
    (
        "(define (domain d) (:predicates (p ?x))\n (:action a :parameters (?x) :effect (p ?z)))",
        "expected a declared parameter",
    ),
    ("(define (problem d))", "expected (domain NAME) (this is a problem file)"),
    ("(define (domain d) (:functions (f)))", "expected a section :requirements, :types"),
    (
        "(define (domain d) (:predicates (p))\n (:action a :parameters () :precondition (not (p)) :effect (p)))",
        "line 2: expected :negative-preconditions in :requirements",
    ),
]


@pytest.mark.parametrize(("text", "expected"), _DOMAIN_ERRORS)
def test_malformed_domain_files_raise_with_file_line_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    """A malformed domain file raises PDDLError naming the file, the line and what was expected."""
    path = tmp_path / "bad_domain.pddl"
    path.write_text(text)
    with pytest.raises(PDDLError) as err:
        load_domain(path)
    assert str(err.value).startswith(f"{path}, line ") and expected in str(err.value)


_PROBLEM_ERRORS = [
    ("(define (problem p) (:domain other) (:init) (:goal (and)))", "line 1: expected (:domain blocksworld)"),
    (
        "(define (problem p) (:domain blocksworld)\n (:objects a - cube) (:goal (and)))",
        "line 2: expected a type declared",
    ),
    (
        "(define (problem p) (:domain blocksworld)\n (:objects a - block)\n (:init (on a zz))\n (:goal (and)))",
        "line 3: expected a declared object or constant in the init, got 'zz'",
    ),
    ("(define (problem p) (:domain blocksworld) (:objects a - block) (:init))", "expected a (:goal ...) section"),
    (
        "(define (problem p) (:domain blocksworld) (:objects a - block)\n (:goal (or (clear a))))",
        "line 2: expected an atom, (not ATOM) or (and ...) in the goal; 'or'",
    ),
]


@pytest.mark.parametrize(("text", "expected"), _PROBLEM_ERRORS)
def test_malformed_problem_files_raise_with_file_line_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    """A malformed problem file raises PDDLError naming the file, the line and what was expected."""
    domain = parse_domain(BLOCKSWORLD_PDDL)
    path = tmp_path / "bad_problem.pddl"
    path.write_text(text)
    with pytest.raises(PDDLError) as err:
        load_problem(path, domain)
    assert str(err.value).startswith(f"{path}, line ") and expected in str(err.value)


def test_loader_errors_reach_the_env(tmp_path: Path, hand_files: tuple[Path, Path]) -> None:
    """PDDLEnv with a missing file or an empty problem directory raises a clear error; one file alone works."""
    with pytest.raises(PDDLError, match=r"does not exist; pass the path of a \.pddl file"):
        PDDLEnv(domain_file=tmp_path / "nope.pddl", problem_files=hand_files[1])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"must name at least one \.pddl problem file"):
        PDDLEnv(domain_file=hand_files[0], problem_files=tmp_path / "empty")
    with pytest.raises(ConfigError, match="go together"):
        PDDLEnv(domain_file=hand_files[0])
    env = PDDLEnv(domain_file=hand_files[0], problem_files=hand_files[1] / "tower3.pddl")
    assert env.suite.task_ids == ("blocksworld:tower3",)


def test_engine_features_equality_negative_preconditions_types_constants() -> None:
    """Typed parameters (with a subtype), constants, (= ...) and (not ...) preconditions ground and step as PDDL
    says; '?' splits glued tokens such as 'level?l1'."""
    domain = parse_domain(
        """(define (domain lamps) (:requirements :strips :typing :negative-preconditions :equality)
        (:types lamp - device device)
        (:constants hub - device)
        (:predicates (on ?d - device) (linked ?a - device ?b - device))
        (:action link :parameters (?a - lamp ?b - device)
          :precondition (and (not (= ?a ?b)) (not (linked ?a ?b)) (on hub))
          :effect (linked ?a ?b))
        (:action power :parameters (?d - device?e - device) :precondition (= ?d ?e) :effect (on ?d)))"""
    )
    problem = parse_problem(
        "(define (problem p) (:domain lamps) (:objects l1 l2 - lamp) (:init) (:goal (and (linked l1 l2) (not (on l2)))))",
        domain,
    )
    task = Task.from_pddl(domain, problem)
    assert {a.key for a in task.actions if a.name == "power"} == {"(power l1 l1)", "(power l2 l2)", "(power hub hub)"}
    assert "(link l1 l1)" not in {a.key for a in task.actions}
    assert task.applicable(task.init)[0].name == "power"  # link needs the hub on
    plan = astar(task)
    assert plan is not None and [a.key for a in plan] == ["(power hub hub)", "(link l1 l2)"]
    assert task.progress(task.init) == 0.5  # (not (on l2)) holds at the start


def _bfs_length(task: Task) -> int | None:
    """The optimal plan length by breadth-first search (the test's oracle)."""
    seen = {task.init}
    queue = deque([(task.init, 0)])
    while queue:
        state, depth = queue.popleft()
        if task.is_goal(state):
            return depth
        for a in task.applicable(state):
            nxt = task.apply(state, a)
            if nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, depth + 1))
    return None


@pytest.mark.parametrize(
    "task_id", ["blocksworld:3:0", "blocksworld:4:1", "blocksworld:4:2", "gripper:2:0", "gripper:3:3"]
)
def test_astar_plans_are_valid_and_optimal_on_generated_problems(task_id: str) -> None:
    """A* plans on generated problems are valid and as short as breadth-first search's."""
    env = PDDLEnv()
    env.reset(options={"task_id": task_id})
    task = env.pddl.task
    plan = astar(task)
    assert plan is not None and validate_plan(task, plan)[0]
    assert len(plan) == _bfs_length(task)


# ---- rewards and the scripted policies ----


def test_step_rewards_sum_to_R_and_game_rewards_to_the_progress_rate() -> None:
    """For every scripted policy, the step rewards sum to info['episode']['R'] and the game rewards to the progress
    rate, which is at least the final share of goal conditions."""
    env = PDDLEnv()
    for name in PDDLEnv.SCRIPTED:
        policy = env.scripted_policy(name, 3)
        for seed in range(4):
            rewards, info = play(env, policy, seed)
            episode = info["episode"]
            assert sum(rewards) == pytest.approx(episode["R"], abs=1e-9)  # type: ignore[index]
            assert episode["score"] == pytest.approx(episode["progress"], abs=1e-12)  # type: ignore[index]
            assert episode["progress"] >= env.pddl.task.progress(env.pddl.state)  # type: ignore[index]


def test_planner_solves_everything_memory_planner_uses_memory_and_baselines_fall_short() -> None:
    """Over 12 seeded tasks: the planner and the memory planner succeed on all, the memory planner reads its plan
    back from memory (no replanning), and the no-memory greedy agent and random fall below them in progress."""
    env = PDDLEnv()
    results = {
        "planner": evaluate_text_game(env, PDDLPlannerPolicy(env), episodes=12),
        "planner_memory": evaluate_text_game(env, memory := PDDLPlannerMemoryPolicy(env), episodes=12),
        "no_memory": evaluate_text_game(env, PDDLGreedyPolicy(env), episodes=12),
        "random": evaluate_text_game(env, PDDLRandomPolicy(env), episodes=12),
    }
    s = {k: v.summary for k, v in results.items()}
    assert s["planner"]["success"] == s["planner_memory"]["success"] == 1.0
    assert memory.rereads == 0
    assert s["planner_memory"]["tool/Add_memory"] == 1.0 and s["planner_memory"]["tool/Retrieve_memory"] >= 1.0
    assert s["planner_memory"]["game_steps"] == s["planner"]["game_steps"]
    assert s["no_memory"]["progress"] < 1.0 and s["random"]["progress"] < s["planner"]["progress"]


def test_planner_replans_after_set_state() -> None:
    """The planner notices a restored state and replans from it, still reaching the goal."""
    env = PDDLEnv()
    obs, info = env.reset(options={"task_id": "blocksworld:5:3"})
    policy = PDDLPlannerPolicy(env)
    policy.reset(info)
    snapshot = env.get_state()
    env.step(policy.act(obs, info))
    env.step(policy.act(obs, info))
    env.set_state(snapshot)
    while True:
        obs, _, te, tr, info = env.step(policy.act(obs, info))
        if te or tr:
            break
    assert te and info["episode"]["success"]


def test_agemem_eval_lists_the_four_policies(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """agemem-eval on AgeMem-PDDL-v0 plays planner, planner_memory, no_memory and random on the same tasks."""
    from agemem_gym.evaluation.cli import eval_main

    out = tmp_path / "eval.json"
    eval_main(["--env-id", "AgeMem-PDDL-v0", "--episodes", "3", "--json-out", str(out)])
    assert "| policy | success | progress | R |" in capsys.readouterr().out
    payload = json.loads(out.read_text())
    assert list(payload["summary"]) == ["planner", "planner_memory", "no_memory", "random"]
    assert payload["summary"]["planner"]["success"] == 1.0


def test_text_suites_benchmark_smoke(tmp_path: Path) -> None:
    """The PDDL part of the text-suites benchmark runs at tiny sizes and writes its table and step costs."""
    from benchmarks import text_suites

    out = tmp_path / "pddl.json"
    results = text_suites.main(text_suites.Args(suite="pddl", quick=True, json_out=out))
    assert set(results["table"]) >= {"planner", "planner_memory", "no_memory", "random"}
    assert json.loads(out.read_text())["step_cost"]["AgeMem step"]["n"] == 30


@pytest.mark.slow
def test_grpo_runs_two_updates_on_pddl(tmp_path: Path) -> None:
    """The GRPO trainer's tiny preset runs two updates on AgeMem-PDDL-v0, drawing its task ids."""
    from agemem_gym.trainers import grpo

    args = grpo.parse_args(
        ["--preset", "tiny", "--env-id", "AgeMem-PDDL-v0", "--num-updates", "2", "--output-dir", str(tmp_path)]
    )
    args.progress = args.plot = False
    grpo.main(args)
    rows = [json.loads(line) for line in next(tmp_path.glob("*/metrics.jsonl")).read_text().splitlines()]
    assert [r["update"] for r in rows] == [1, 2]
    assert all(r["rollout/episodes"] == 8 and r["reward/mean"] <= 1.0 for r in rows)
