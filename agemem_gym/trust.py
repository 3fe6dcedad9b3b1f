"""What a file may make this process do: names read from recordings and checkpoints never import code.

``gymnasium.make("some_module:Env-v0")`` imports ``some_module`` before it looks the id up, so an env id read from
a file (a recording's header, a checkpoint's saved arguments) could run any installed or path-reachable module.
:func:`check_env_id` lets such an id through only when making it runs no new code: a plain id already in
Gymnasium's registry, or ``module:id`` where the module is already imported. Anything else needs the caller's
explicit ``trust_remote_module=True``.

>>> import agemem_gym
>>> check_env_id("AgeMem-Synthetic-v0", source="a recording")
'AgeMem-Synthetic-v0'
>>> check_env_id("agemem_gym:AgeMem-Synthetic-v0", source="a recording")  # already imported: nothing new runs
'agemem_gym:AgeMem-Synthetic-v0'
>>> check_env_id("evil_module:AgeMem-Synthetic-v0", source="a recording")
Traceback (most recent call last):
...
agemem_gym.errors.DataError: a recording names env id 'evil_module:AgeMem-Synthetic-v0', whose module 'evil_module' is not imported; making it would import (run) that module. Pass env= (an env you made yourself), or trust_remote_module=True if you trust where the file came from
"""

from __future__ import annotations

import sys

from gymnasium.envs.registration import registry

from agemem_gym.errors import DataError

__all__ = ["check_env_id"]


def check_env_id(env_id: object, *, source: str, trust_remote_module: bool = False) -> str:
    """``env_id`` if ``gymnasium.make(env_id)`` would import no new module, else :class:`DataError`.

    Args:
        env_id: The id as read from a file.
        source: What the id was read from, for the message (e.g. ``"the recording 'eps.jsonl'"``).
        trust_remote_module: Let any ``module:id`` through (the caller vouches for the file).

    Raises:
        DataError: The id is not a string, names a module that is not imported (without
            ``trust_remote_module``), or is not registered.
    """
    fix = "Pass env= (an env you made yourself), or trust_remote_module=True if you trust where the file came from"
    if not isinstance(env_id, str) or not env_id:
        raise DataError(f"{source} names no usable env id (got {env_id!r:.80}); pass env= to use it")
    module, sep, name = env_id.rpartition(":")
    if sep and not trust_remote_module and module not in sys.modules:
        raise DataError(
            f"{source} names env id {env_id!r:.120}, whose module {module!r:.80} is not imported; making it would "
            f"import (run) that module. {fix}"
        )
    if not sep and name not in registry:
        raise DataError(f"{source} names env id {env_id!r:.120}, which is not registered. {fix}")
    return env_id
