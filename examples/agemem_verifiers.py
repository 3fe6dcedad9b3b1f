"""The verifiers 0.4 plugin ``agemem-verifiers``: AgeMem's taskset, env and harness for ``verifiers.v1``.

verifiers finds plugins by id as top-level modules (``vf-eval agemem-verifiers`` imports ``agemem_verifiers``) and
does not resolve dotted ids, so this module exists only to re-export :mod:`agemem_gym.adapters.verifiers_v1`, where
everything is implemented and documented. It is not installed with the package (DESIGN.md §1: one import namespace,
nothing else at the top level of site-packages): put this folder on the path, ``PYTHONPATH=examples vf-eval
agemem-verifiers ...``, or copy the file next to your own config. It needs verifiers 0.4:
``pip install 'agemem-gym[verifiers]'``.
"""

from agemem_gym.adapters.verifiers_v1 import AgeMemEnv, AgeMemHarness, AgeMemTaskset

__all__ = ["AgeMemEnv", "AgeMemHarness", "AgeMemTaskset"]
