"""Adapters that plug the AgeMem env into other RL libraries (each an optional extra).

Importing this package imports nothing heavy; import the adapter you need:

| module | library (version written against) | what it gives |
|---|---|---|
| :mod:`agemem_gym.adapters.records` | none | versioned per-turn step records (JSONL), a collector for any policy |
| :mod:`agemem_gym.adapters.trl` | TRL 1.16 (``[trl]``) | ``environment_factory`` and dataset for ``GRPOTrainer`` |
| :mod:`agemem_gym.adapters.skyrl` | skyrl-gym 0.4 (``[skyrl]``) | a ``BaseTextEnv`` |
| :mod:`agemem_gym.adapters.verifiers_v1` | verifiers 0.4.0 (``[verifiers]``) | the ``agemem-verifiers`` taskset, env and harness |
| :mod:`agemem_gym.adapters.verifiers` | verifiers 0.3.1 (``[verifiers03]``, ``<0.4``) | a ``MultiTurnEnv`` and ``load_environment`` |
| :mod:`agemem_gym.adapters.verl` | verl agent loop (not installed here) | an ``AgentLoopBase``-shaped loop |

Outside the package (run from the repository root): ``examples/reinforce.py``, a 30-line REINFORCE loop on
``gym.make_vec``, and ``benchmarks/compare_trl.py``, our GRPO trainer vs TRL on the same work (it imports the
trainer, which the core never does). See ``docs/adapters.md``.
"""
