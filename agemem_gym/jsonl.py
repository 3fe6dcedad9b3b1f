"""JSON Lines that any text survives: encoding lines that are always valid UTF-8.

Agent text is untrusted and may hold lone UTF-16 surrogates (``"\\ud800"``), which UTF-8 cannot encode: a line
written with ``ensure_ascii=False`` would then fail *after* the step it records has happened. :func:`json_line`
keeps non-ASCII text readable and falls back to ASCII escapes for a record that needs them, so the line always
encodes and decodes back to exactly the same value.

>>> json_line({"text": "café"})
'{"text": "café"}\\n'
>>> json_line({"text": "bad \\ud800"})
'{"text": "bad \\\\ud800"}\\n'
>>> import json; json.loads(json_line({"text": "bad \\ud800"}))["text"] == "bad \\ud800"
True
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["json_line"]


def json_line(record: Any, *, allow_nan: bool = True) -> str:
    """``record`` as one line of JSON (newline included) that is valid UTF-8 whatever strings it holds.

    Args:
        record: A JSON-serialisable value.
        allow_nan: As for :func:`json.dumps` (False raises ``ValueError`` on NaN or infinity).
    """
    line = json.dumps(record, ensure_ascii=False, allow_nan=allow_nan)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: \uXXXX escapes round-trip them exactly
        line = json.dumps(record, ensure_ascii=True, allow_nan=allow_nan)
    return line + "\n"
