"""Registers the AgeMem environment ids with Gymnasium (run on ``import agemem_gym``).

Entry points are strings, so registering imports no suite and no data: ``gym.make`` imports the suite module
only when an id is made. ``gym.make("agemem_gym:AgeMem-HotpotQA-v0")`` imports this package first and so works
without an explicit ``import agemem_gym``.
"""

from __future__ import annotations

from typing import Any

from gymnasium.envs.registration import register, registry

__all__ = ["ENV_IDS", "register_envs"]

# id -> (entry point, default kwargs). The env enforces its own step and turn limits (truncating with the reason
# in info), so no TimeLimit wrapper is added.
ENV_IDS: dict[str, tuple[str, dict[str, Any]]] = {
    "AgeMem-HotpotQA-v0": ("agemem_gym.envs.hotpotqa:HotpotQAEnv", {}),
    "AgeMem-Synthetic-v0": ("agemem_gym.envs.synthetic:SyntheticEnv", {}),
    # minigrid is imported only when the env is made (the [babyai] extra); without it gym.make raises ConfigError.
    "AgeMem-BabyAI-v0": ("agemem_gym.envs.babyai:BabyAIEnv", {}),
    # scienceworld (the [scienceworld] extra) and a Java runtime are needed only when the env is made.
    "AgeMem-ScienceWorld-v0": ("agemem_gym.envs.scienceworld:ScienceWorldEnv", {}),
    # Pure Python (our own STRIPS engine): generated blocksworld and gripper problems, or the user's PDDL files.
    "AgeMem-PDDL-v0": ("agemem_gym.envs.pddl:PDDLEnv", {}),
    # textworld (the [textworld] extra) is imported only when a game is made or compiled.
    "AgeMem-TextWorld-v0": ("agemem_gym.envs.textworld:TextWorldEnv", {}),
    # ALFWorld's game files (a download; see agemem-download alfworld) and the [textworld] extra.
    "AgeMem-ALFWorld-v0": ("agemem_gym.envs.alfworld:ALFWorldEnv", {}),
}


def register_envs() -> None:
    """Register every id in :data:`ENV_IDS` that is not registered yet (idempotent)."""
    for env_id, (entry_point, kwargs) in ENV_IDS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, kwargs=dict(kwargs), disable_env_checker=False)
