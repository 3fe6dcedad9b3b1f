"""JSON Lines that any text survives: one writer (atomic) and one reader (that names the bad line) for every file.

Agent text is untrusted and may hold lone UTF-16 surrogates (``"\\ud800"``), which UTF-8 cannot encode: a line
written with ``ensure_ascii=False`` would then fail *after* the step it records has happened. :func:`json_line`
keeps non-ASCII text readable and falls back to ASCII escapes for a record that needs them, so the line always
encodes and decodes back to exactly the same value.

:func:`write_jsonl` writes a whole file at once (a temporary file renamed into place, so a reader never sees half
of it and a failed write leaves the old file as it was); :func:`read_jsonl` reads one back lazily and reports a bad
line as ``path:line: what is wrong``. The episode recorder (:mod:`agemem_gym.evaluation.recorder`) appends line by line
instead, because it must keep what a crash did not reach; it decodes its lines with :func:`decode_line` too.

>>> json_line({"text": "café"})
'{"text": "café"}\\n'
>>> json_line({"text": "bad \\ud800"})
'{"text": "bad \\\\ud800"}\\n'
>>> import json; json.loads(json_line({"text": "bad \\ud800"}))["text"] == "bad \\ud800"
True
>>> import os, tempfile; path = os.path.join(tempfile.mkdtemp(), "rows.jsonl")
>>> write_jsonl([{"a": 1}, {"a": "é"}], path)
2
>>> list(read_jsonl(path))
[{'a': 1}, {'a': 'é'}]
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from agemem_gym.errors import DataError

__all__ = ["decode_line", "json_line", "read_jsonl", "write_jsonl"]


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


def decode_line(raw: bytes) -> Any:
    """One line's JSON value; ``ValueError`` (not JSON, not UTF-8, or nested too deeply) when it cannot be read."""
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


def write_jsonl(
    values: Iterable[Any],
    path: str | os.PathLike[str],
    *,
    check: Callable[[Any], None] | None = None,
    allow_nan: bool = True,
) -> int:
    """Write ``values`` as JSON Lines, atomically; returns how many lines were written.

    The lines go to a temporary file beside ``path`` (its folder is created), which is flushed to disk and renamed
    over ``path`` only once every value is written: on any error nothing is left behind and an existing ``path``
    is unchanged.

    Args:
        values: JSON-serialisable values, one per line.
        path: The destination (overwritten).
        check: Called on each value before it is written; raise (e.g. :class:`~agemem_gym.errors.DataError`) to
            refuse it, which leaves ``path`` untouched.
        allow_nan: As for :func:`json_line`.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for value in values:
                if check is not None:
                    check(value)
                f.write(json_line(value, allow_nan=allow_nan))
                n += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return n


def read_jsonl(path: str | os.PathLike[str], *, check: Callable[[Any], None] | None = None) -> Iterator[Any]:
    """The values of a JSON Lines file, one at a time (blank lines are skipped).

    Args:
        path: The file.
        check: Called on each value; a :class:`~agemem_gym.errors.DataError` it raises is re-raised with the file
            and line in front of its message.

    Raises:
        DataError: ``path:line: ...``: a line is not UTF-8 JSON, or ``check`` refused its value.
    """
    with Path(path).open("rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                value = decode_line(raw)
            except ValueError as err:
                reason = err.msg if isinstance(err, json.JSONDecodeError) else str(err)[:80]
                raise DataError(f"{path}:{n}: not JSON ({reason}); was the file cut short mid-line?") from None
            if check is not None:
                try:
                    check(value)
                except DataError as err:
                    raise DataError(f"{path}:{n}: {err}") from None
            yield value
