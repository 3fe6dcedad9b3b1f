"""Your own training loop: REINFORCE with the env's per-step shaped rewards, against ``gym.make_vec``.

A deliberately tiny policy, so the loop is the point: a table of logits over four *macro actions* (reply, store
the user's paragraph, retrieve for the question, filter the paragraph out of the context), indexed by (stage,
whether the last message is the user's). Each macro is rendered into the protocol's text, so the env sees exactly
what an LLM would write. The update is REINFORCE with returns-to-go of the shaped step rewards (which sum to R(τ))
and a mean baseline. Run it with ``python -m examples.reinforce``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import agemem_gym  # noqa: F401  (registers the env ids)
from agemem_gym.evaluation.agents import heuristic_answer

__all__ = ["MACROS", "main", "render", "state_index"]

MACROS = ("reply", "store", "retrieve", "filter")
ENV_KWARGS: dict[str, Any] = {
    "n_tasks": 50,
    "episode": {"stage1_distractors": 1, "stage2_paragraphs": 2, "max_tool_rounds": 2},
    "prompt_style": "compact",
}


def state_index(stage: int, messages: list[Mapping[str, str]]) -> int:
    """Row of the logit table: 2·(stage − 1) + 1 when the last message is the user's."""
    return 2 * (int(stage) - 1) + int(messages[-1]["role"] == "user")


def render(macro: int, stage: int, messages: list[Mapping[str, str]]) -> str:
    """The protocol text of a macro action, filled in from the visible context (no privileged information)."""
    user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    paragraph = user.split("\n")[1] if "\n" in user else user
    if MACROS[macro] == "store":
        call = {"name": "Add_memory", "arguments": {"content": paragraph}}
    elif MACROS[macro] == "retrieve":
        call = {"name": "Retrieve_memory", "arguments": {"query": user, "top_k": 3}}
    elif MACROS[macro] == "filter":
        call = {"name": "Filter_context", "arguments": {"criteria": paragraph}}
    elif stage == 3:  # reply to the question with the shared extractive reader over what is in context
        question = user.split("question for you:")[-1].split("\n")[0].strip()
        return f"<answer>{heuristic_answer(question, [m['content'] for m in messages[1:]])}</answer>"
    else:
        return "<answer>Thanks for sharing!</answer>"
    return f"<tool_call>{json.dumps([call])}</tool_call>"


def main(
    iterations: int = 40,
    num_envs: int = 8,
    lr: float = 0.3,
    seed: int = 0,
    on_iteration: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train the logit table; returns the mean R(τ) of each iteration's ``num_envs`` episodes."""
    envs = gym.make_vec("AgeMem-Synthetic-v0", num_envs=num_envs, vectorization_mode="sync", **ENV_KWARGS)
    theta = torch.zeros(6, len(MACROS), requires_grad=True)  # (state, macro) logits
    opt = torch.optim.Adam([theta], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history: list[float] = []
    for it in range(iterations):
        # ---- rollout: one episode per env, all on one task (a group, as in GRPO); ignore steps after an end ----
        _, info = envs.reset(seed=seed + it, options={"task_id": f"syn-medium-s0-{it % 50:06d}"})
        logps, rewards, alive = [], [], np.ones(num_envs, dtype=bool)
        while alive.any():
            states = torch.tensor([state_index(info["stage"][i], info["messages"][i]) for i in range(num_envs)])
            probs = torch.softmax(theta[states], dim=-1)  # (N, A)
            macros = torch.multinomial(probs, 1, generator=gen).squeeze(1)  # (N,)
            texts = [render(int(macros[i]), info["stage"][i], info["messages"][i]) for i in range(num_envs)]
            _, reward, terminated, truncated, info = envs.step(texts)
            logps.append(torch.log(probs.gather(1, macros[:, None]).squeeze(1)) * torch.tensor(alive))
            rewards.append(torch.tensor(reward * alive, dtype=torch.float32))
            alive &= ~(terminated | truncated)
        # ---- returns-to-go of the shaped rewards (G_0 = R(τ)), mean baseline, REINFORCE ----
        r = torch.stack(rewards)  # (T, N)
        returns = r.flip(0).cumsum(0).flip(0)  # (T, N): G_t = Σ_{t' ≥ t} r_t'
        taken = torch.stack(logps) != 0  # (T, N): steps that belong to the episode
        adv = (returns - returns[taken].mean()) * taken
        loss = -(torch.stack(logps) * adv).sum() / num_envs
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(returns[0].mean()))
        if on_iteration is not None:
            on_iteration(it, history[-1])
    envs.close()
    return history


if __name__ == "__main__":
    torch.manual_seed(0)
    curve = main(on_iteration=lambda it, r: print(f"iteration {it:3d}  mean R(tau) {r:+.3f}"))
    print(f"first 5: {np.mean(curve[:5]):+.3f}   last 5: {np.mean(curve[-5:]):+.3f}")
