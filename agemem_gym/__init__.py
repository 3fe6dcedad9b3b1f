"""AgeMem-Gym: Gymnasium environments in which an LLM agent manages its long- and short-term memory.

Importing the package registers the environment ids (``AgeMem-HotpotQA-v0``, ``AgeMem-Synthetic-v0``).
"""

from agemem_gym._version import __version__
from agemem_gym.registration import ENV_IDS, register_envs

register_envs()

__all__ = ["ENV_IDS", "__version__", "register_envs"]
