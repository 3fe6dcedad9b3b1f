"""Adapters that plug the AgeMem env into other RL libraries (each an optional extra)."""
