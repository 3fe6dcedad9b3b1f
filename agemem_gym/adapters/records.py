"""Moved: the step records are now :mod:`agemem_gym.step_records`, in the core (this name keeps old imports working).

Importing this module warns (``DeprecationWarning``) and re-exports the same objects; import
``agemem_gym.step_records`` instead.
"""

from __future__ import annotations

import warnings

from agemem_gym.step_records import (
    RECORD_FIELDS,
    SCHEMA_VERSION,
    TOKEN_FIELDS,
    AgentPolicy,
    collect_records,
    read_records,
    tokenize_step,
    validate_record,
    write_records,
)

__all__ = [
    "RECORD_FIELDS",
    "SCHEMA_VERSION",
    "TOKEN_FIELDS",
    "AgentPolicy",
    "collect_records",
    "read_records",
    "tokenize_step",
    "validate_record",
    "write_records",
]

warnings.warn(
    "agemem_gym.adapters.records moved to agemem_gym.step_records; import it from there",
    DeprecationWarning,
    stacklevel=2,
)
