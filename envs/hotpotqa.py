"""HotpotQA as a task suite: find the file, read it, turn its records into :class:`~agemem_gym.task.Task`.

Two record layouts are read:

- the official one (``hotpot_dev_distractor_v1.json``, ``hotpot_train_v1.1.json``): ``_id``, ``question``,
  ``answer``, ``supporting_facts: [[title, sent_idx], ...]``, ``context: [[title, [sentence, ...]], ...]``,
  ``type``, ``level``;
- the Hugging Face one (``hotpot_qa`` exported with ``datasets``): ``id`` instead of ``_id``,
  ``supporting_facts: {"title": [...], "sent_id": [...]}`` and ``context: {"title": [...], "sentences": [...]}``.

Either may be a JSON list or JSON Lines, plain or gzip-compressed (detected from the file's first bytes). Files
are read record by record, so ``limit`` stops early and memory holds the tasks, not the raw JSON as well. The
whole train file (566 MB, 90,447 questions) still becomes several GB of Python objects: pass ``limit`` to take a
prefix of it.

Where the data comes from, in order: an explicit path (``data_path=`` of the env), the ``AGEMEM_HOTPOTQA_PATH``
environment variable, then the cache directory that ``agemem-download hotpotqa`` writes to.

>>> import gzip, json, tempfile, pathlib
>>> rec = {"_id": "q1", "question": "Q?", "answer": "A", "type": "bridge", "level": "easy",
...        "supporting_facts": [["T", 0]], "context": [["T", ["A is here."]]]}
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.json.gz"
>>> _ = path.write_bytes(gzip.compress(json.dumps([rec]).encode()))
>>> suite = load_hotpotqa(path)
>>> suite.get("q1").supporting_sentences
('A is here.',)
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from agemem_gym._validate import check
from agemem_gym.env import AgeMemEnv
from agemem_gym.envs._paths import dataset_cache_dir
from agemem_gym.errors import DataError
from agemem_gym.task import Task, TaskSuite

__all__ = [
    "HOTPOTQA_BASE_URL",
    "HOTPOTQA_FILES",
    "HOTPOTQA_PATH_ENV",
    "HotpotQAEnv",
    "HotpotQAFile",
    "Split",
    "clear_hotpotqa_cache",
    "hf_record_to_official",
    "hotpotqa_cache_dir",
    "load_hotpotqa",
    "resolve_hotpotqa_path",
]

Split = Literal["dev", "train"]

HOTPOTQA_PATH_ENV = "AGEMEM_HOTPOTQA_PATH"
"""Environment variable naming a HotpotQA file, or a directory that holds one."""

# The official download location, as listed in the HotpotQA repository's README (github.com/hotpotqa/hotpot) and
# used as `_URL_BASE` by the Hugging Face `hotpot_qa` dataset script (huggingface/datasets,
# datasets/hotpot_qa/hotpot_qa.py).
HOTPOTQA_BASE_URL = "http://curtis.ml.cmu.edu/datasets/hotpot/"


@dataclass(frozen=True)
class HotpotQAFile:
    """One official HotpotQA file: its name, where it is published, its sha256 and its size in bytes."""

    filename: str
    url: str
    sha256: str | None
    num_bytes: int | None


# Checksums and sizes: `download_checksums` of huggingface/datasets, datasets/hotpot_qa/dataset_infos.json
# (commit 040102f100964a33fd334e2695f1c493fa6b92db); other public projects record the same sha256 values.
HOTPOTQA_FILES: dict[str, HotpotQAFile] = {
    "dev": HotpotQAFile(
        filename="hotpot_dev_distractor_v1.json",
        url=HOTPOTQA_BASE_URL + "hotpot_dev_distractor_v1.json",
        sha256="4e9ecb5c8d3b719f624d66b60f8d56bf227f03914f5f0753d6fa1b359d7104ea",
        num_bytes=46_320_117,
    ),
    "train": HotpotQAFile(
        filename="hotpot_train_v1.1.json",
        url=HOTPOTQA_BASE_URL + "hotpot_train_v1.1.json",
        sha256="26650cf50234ef5fb2e664ed70bbecdfd87815e6bffc257e068efea5cf7cd316",
        num_bytes=566_426_227,
    ),
}

# Names looked for in a directory, best first: the dev distractor file, the train file, then samples of them.
_KNOWN_NAMES = (
    "hotpot_dev_distractor_v1.json",
    "hotpot_dev_distractor_v1.json.gz",
    "hotpot_train_v1.1.json",
    "hotpot_train_v1.1.json.gz",
)
_SAMPLE_GLOBS = ("hotpot_dev_distractor*_sample*", "hotpot_*_sample*")
_DATA_SUFFIXES = (".json", ".jsonl", ".gz")

_GZIP_MAGIC = b"\x1f\x8b"
_READ_CHARS = 1 << 20
_MAX_RECORD_CHARS = 64 << 20  # far above any real record (~10 KB); bounds memory on a malformed file
_WHITESPACE = frozenset(" \t\n\r")  # JSON's whitespace


def hotpotqa_cache_dir() -> Path:
    """The directory ``agemem-download hotpotqa`` saves to (``<cache dir>/hotpotqa``)."""
    return dataset_cache_dir("hotpotqa")


# --------------------------------------------------------------------------------------------------------------
# Finding the file
# --------------------------------------------------------------------------------------------------------------


def _find_in_dir(directory: Path) -> Path | None:
    """The best known HotpotQA file in ``directory``, or ``None``."""
    for name in _KNOWN_NAMES:
        if (directory / name).is_file():
            return directory / name
    for pattern in _SAMPLE_GLOBS:
        hits = sorted(p for p in directory.glob(pattern) if p.is_file() and p.name.endswith(_DATA_SUFFIXES))
        if hits:
            return hits[0]
    return None


def _from_named(path: Path, origin: str) -> Path:
    """Resolve a path the user named (argument or environment variable); a miss is an error, never skipped."""
    path = path.expanduser()
    if path.is_file():
        return path.resolve()
    if path.is_dir():
        found = _find_in_dir(path)
        if found is not None:
            return found.resolve()
        raise DataError(
            f"{origin} is the directory {str(path)!r}, which holds no HotpotQA file; expected one of "
            f"{', '.join(_KNOWN_NAMES)} (or a '*_sample*.json[.gz]' file). Pass the file itself, or run "
            f"`agemem-download hotpotqa --split dev --dest {path}`"
        )
    raise DataError(f"{origin} is {str(path)!r}, which does not exist; pass an existing HotpotQA file or directory")


def _not_found_message(cache: Path) -> str:
    return (
        "HotpotQA data not found. Looked for an explicit path (none given), the environment variable "
        f"{HOTPOTQA_PATH_ENV} (not set) and the cache directory {str(cache)!r} (no file there). Get the data in one "
        "of three ways:\n"
        '  1. pass data_path="/path/to/hotpot_dev_distractor_v1.json" (a file, or a directory that holds it);\n'
        f"  2. set the environment variable {HOTPOTQA_PATH_ENV} to that file or directory;\n"
        f"  3. run `agemem-download hotpotqa --split dev`, which saves it to {str(cache)!r}.\n"
        'The synthetic suite needs no data: gymnasium.make("AgeMem-Synthetic-v0").'
    )


def resolve_hotpotqa_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Find the HotpotQA file to load.

    Order: ``path`` (a file, or a directory holding a known file name) → the ``AGEMEM_HOTPOTQA_PATH``
    environment variable (same rules) → the cache directory (:func:`hotpotqa_cache_dir`). In a directory the dev
    distractor file is preferred, then the train file, then ``*_sample*`` files.

    Args:
        path: An explicit file or directory, or ``None`` to look in the environment and the cache.

    Returns:
        The resolved absolute path of the file.

    Raises:
        DataError: A named path does not exist or holds no HotpotQA file, or nothing was found at all; the message
            lists the three ways to get the data and where it looked.
    """
    if path is not None:
        return _from_named(Path(path), "the HotpotQA path")
    env = os.environ.get(HOTPOTQA_PATH_ENV)
    if env:
        return _from_named(Path(env), f"${HOTPOTQA_PATH_ENV}")
    cache = hotpotqa_cache_dir()
    found = _find_in_dir(cache) if cache.is_dir() else None
    if found is None:
        raise DataError(_not_found_message(cache))
    return found.resolve()


# --------------------------------------------------------------------------------------------------------------
# Reading records
# --------------------------------------------------------------------------------------------------------------


def _open_text(path: Path) -> IO[str]:
    """Open ``path`` as UTF-8 text, decompressing when its first bytes are the gzip magic number."""
    with path.open("rb") as f:
        magic = f.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return path.open(encoding="utf-8-sig")


class _RecordReader:
    """Yield the top-level values of a JSON list (``[v, v, ...]``) or of JSON Lines, one at a time.

    The text is read in chunks and each value is decoded by :meth:`json.JSONDecoder.raw_decode` (the C scanner)
    straight from the buffer, so a 566 MB file never sits in memory whole.
    """

    def __init__(self, stream: IO[str], name: str) -> None:
        self._stream = stream
        self._name = name
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._decoder = json.JSONDecoder()

    def _fill(self, n: int = 0) -> bool:
        """Append up to ``n`` (default ``_READ_CHARS``) more characters to the buffer; ``False`` at end of file."""
        if self._eof:
            return False
        chunk = self._stream.read(n or _READ_CHARS)
        if not chunk:
            self._eof = True
            return False
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0
        return True

    def _peek(self) -> str:
        """The next non-whitespace character without consuming it, or ``""`` at end of file."""
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in _WHITESPACE:
                self._pos += 1
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def _value(self, index: int) -> Any:
        """Decode the value that starts at the next non-whitespace character, reading more text while incomplete."""
        self._peek()
        grow = _READ_CHARS
        while True:
            try:
                value, self._pos = self._decoder.raw_decode(self._buf, self._pos)
                return value
            except json.JSONDecodeError as err:
                too_big = len(self._buf) - self._pos > _MAX_RECORD_CHARS
                if too_big or not self._fill(grow):
                    raise DataError(
                        f"{self._name}: record #{index} is not valid JSON ({err.msg}); the file is truncated or "
                        "corrupt: download it again"
                    ) from err
                grow *= 2
            except (ValueError, RecursionError) as err:  # an integer past Python's digit limit; absurd nesting
                what = (
                    "nests too deeply" if isinstance(err, RecursionError) else f"holds a value Python refuses ({err})"
                )
                raise DataError(
                    f"{self._name}: record #{index} {what:.200}; this is not a HotpotQA record: the file is corrupt, "
                    "download it again"
                ) from None

    def __iter__(self) -> Iterator[Any]:
        first = self._peek()
        if first == "[":
            self._pos += 1
            yield from self._list_items()
        elif first:
            yield from self._lines()

    def _list_items(self) -> Iterator[Any]:
        index = 0
        if self._peek() == "]":
            self._pos += 1
            self._end_of_list(0)
            return
        while True:
            yield self._value(index)
            index += 1
            sep = self._peek()
            self._pos += 1
            if sep == "]":
                self._end_of_list(index)
                return
            if sep != ",":
                got = repr(sep) if sep else "end of file"
                raise DataError(f"{self._name}: expects ',' or ']' after record #{index - 1}, got {got}")

    def _end_of_list(self, count: int) -> None:
        """Nothing but whitespace may follow the top-level list (else the file is not what it seems)."""
        extra = self._peek()
        if extra:
            raise DataError(
                f"{self._name}: unexpected text {self._buf[self._pos : self._pos + 20]!r} after the top-level list "
                f"of {count} records; the file is corrupt or two files were joined: download it again"
            )

    def _lines(self) -> Iterator[Any]:
        index = 0
        while self._peek():
            yield self._value(index)
            index += 1


def _iter_records(path: Path) -> Iterator[Any]:
    """Every top-level record of a HotpotQA file (JSON list or JSON Lines, plain or gzip)."""
    try:
        with _open_text(path) as stream:
            yield from _RecordReader(stream, str(path))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); is it a HotpotQA file?") from err
    except (EOFError, gzip.BadGzipFile, OSError) as err:
        raise DataError(f"{path}: cannot read it ({err}); the file is truncated or corrupt: download it again") from err


# --------------------------------------------------------------------------------------------------------------
# Records to tasks
# --------------------------------------------------------------------------------------------------------------


def hf_record_to_official(record: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a record in the Hugging Face ``hotpot_qa`` layout to the official layout.

    Both supporting-fact encodings are accepted: ``{"title": [...], "sent_id": [...]}`` and a list of
    ``{"title": ..., "sent_id": ...}``. Fields are passed through as they are; :meth:`Task.from_dict` validates.

    >>> hf = {"id": "q1", "question": "Q?", "answer": "A", "type": "bridge", "level": "easy",
    ...       "supporting_facts": {"title": ["T"], "sent_id": [0]},
    ...       "context": {"title": ["T"], "sentences": [["A is here."]]}}
    >>> hf_record_to_official(hf)["supporting_facts"], hf_record_to_official(hf)["context"]
    ([['T', 0]], [['T', ['A is here.']]])

    Raises:
        DataError: ``context`` or ``supporting_facts`` does not have the Hugging Face shape.
    """
    rid = record.get("id", "<no id>")
    ctx, sfs = record.get("context"), record.get("supporting_facts")
    if (
        not isinstance(ctx, Mapping)
        or not isinstance(ctx.get("title"), list)
        or not isinstance(ctx.get("sentences"), list)
    ):
        raise DataError(f"record {rid!r}: 'context' must be {{'title': [...], 'sentences': [[...], ...]}}")
    if len(ctx["title"]) != len(ctx["sentences"]):
        raise DataError(
            f"record {rid!r}: context has {len(ctx['title'])} titles but {len(ctx['sentences'])} sentence lists"
        )
    if isinstance(sfs, Mapping) and isinstance(sfs.get("title"), list) and isinstance(sfs.get("sent_id"), list):
        facts = [[t, i] for t, i in zip(sfs["title"], sfs["sent_id"])]
    elif isinstance(sfs, list) and all(isinstance(f, Mapping) for f in sfs):
        facts = [[f.get("title"), f.get("sent_id")] for f in sfs]
    else:
        raise DataError(f"record {rid!r}: 'supporting_facts' must be {{'title': [...], 'sent_id': [...]}}")
    out = {k: v for k, v in record.items() if k not in ("id", "context", "supporting_facts")}
    out["_id"] = rid if isinstance(rid, str) else str(rid)
    out["supporting_facts"] = facts
    out["context"] = [[t, s] for t, s in zip(ctx["title"], ctx["sentences"])]
    return out


def _is_hf_record(record: Any) -> bool:
    return isinstance(record, Mapping) and "_id" not in record and isinstance(record.get("context"), Mapping)


def _only_unresolved(record: Mapping[str, Any]) -> bool:
    """True when a record is well formed but none of its supporting facts names a sentence of its context."""
    if not all(isinstance(record.get(k), str) for k in ("_id", "question", "answer")):
        return False
    ctx, sfs = record.get("context"), record.get("supporting_facts")
    if not isinstance(ctx, list) or not isinstance(sfs, list):
        return False
    sizes: dict[str, int] = {}
    for item in ctx:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], list)):
            return False
        if not all(isinstance(s, str) for s in item[1]):
            return False
        sizes[item[0]] = len(item[1])
    for f in sfs:
        if not (isinstance(f, list) and len(f) == 2 and isinstance(f[0], str) and type(f[1]) is int):
            return False
    return not any(0 <= f[1] < sizes.get(f[0], 0) for f in sfs)


@dataclass
class _Skips:
    """What was left out while reading, for one warning at the end."""

    records: int = 0
    facts: int = 0
    fact_records: int = 0
    examples: tuple[str, ...] = ()
    empty_answers: int = 0
    empty_examples: tuple[str, ...] = ()


def _to_task(record: Any, where: str, source: str, skips: _Skips) -> Task | None:
    """One record → a task, ``None`` for a record whose supporting facts do not resolve (counted in ``skips``)."""
    try:
        if _is_hf_record(record):
            record = hf_record_to_official(record)
        if isinstance(record, Mapping) and isinstance(record.get("answer"), str) and not record["answer"].strip():
            skips.empty_answers += 1  # no gold answer to score against: skipped (and counted), never used
            if len(skips.empty_examples) < 3:
                skips.empty_examples += (_record_id(record),)
            return None
        task = Task.from_dict(record, source=source)
    except DataError as err:
        if isinstance(record, Mapping) and _only_unresolved(record):
            skips.records += 1
            if len(skips.examples) < 3:
                skips.examples += (record["_id"],)
            return None
        raise DataError(f"{where}: {err}") from err
    dropped = len(record["supporting_facts"]) - len(task.supporting_facts)
    if dropped:
        skips.facts += dropped
        skips.fact_records += 1
    return task


def _warn_skips(path: Path, skips: _Skips, total: int) -> None:
    parts = []
    if skips.records:
        ids = ", ".join(map(repr, skips.examples))
        parts.append(
            f"skipped {skips.records} of {total} records whose supporting facts name no context sentence (e.g. {ids})"
        )
    if skips.empty_answers:
        parts.append(
            f"skipped {skips.empty_answers} of {total} records with an empty answer "
            f"(e.g. {', '.join(skips.empty_examples)})"
        )
    if skips.facts:
        parts.append(
            f"dropped {skips.facts} supporting facts that name no context sentence from "
            f"{skips.fact_records} other records"
        )
    if parts:
        warnings.warn(f"{path.name}: {'; '.join(parts)}", stacklevel=3)


def _record_id(record: Any) -> str:
    if isinstance(record, Mapping):
        return repr(record.get("_id", record.get("id", "<no id>")))
    return "<not a JSON object>"


def _parse(path: Path, limit: int | None, source: str) -> TaskSuite:
    """Read ``path`` into a suite of at most ``limit`` tasks (no caching)."""
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    skips = _Skips()
    total = 0
    for index, record in enumerate(_iter_records(path)):
        total += 1
        where = f"{path}: record #{index} (id {_record_id(record)})"
        task = _to_task(record, where, source, skips)
        if task is None:
            continue
        if task.task_id in seen:
            raise DataError(f"{where}: the id also belongs to record #{seen[task.task_id]}; ids must be unique")
        seen[task.task_id] = index
        tasks.append(task)
        if limit is not None and len(tasks) >= limit:
            break
    _warn_skips(path, skips, total)
    if not tasks:
        what = "holds no records" if total == 0 else f"holds {total} records but none is usable"
        raise DataError(f"{path}: {what}; expects a JSON list or JSON Lines of HotpotQA records")
    return TaskSuite(source, tasks)


# --------------------------------------------------------------------------------------------------------------
# Loading, with an in-process cache
# --------------------------------------------------------------------------------------------------------------

_CACHE_SIZE = 4
_cache: OrderedDict[tuple[str, int, int, int | None, str], TaskSuite] = OrderedDict()
_cache_lock = threading.Lock()


def clear_hotpotqa_cache() -> None:
    """Forget every suite :func:`load_hotpotqa` has cached in this process."""
    with _cache_lock:
        _cache.clear()


def load_hotpotqa(
    path: str | os.PathLike[str] | None = None, *, limit: int | None = None, source_name: str = "hotpotqa"
) -> TaskSuite:
    """Load a HotpotQA file as a :class:`TaskSuite`.

    The file is found by :func:`resolve_hotpotqa_path`. Suites are cached in-process per (file, modification
    time, size, ``limit``, ``source_name``), so K environments in one process parse the file once; warnings about
    skipped records are issued by the first parse only. Tasks are immutable, so sharing them is safe.

    Args:
        path: A HotpotQA file or a directory holding one; ``None`` looks in ``AGEMEM_HOTPOTQA_PATH`` and the cache.
        limit: Keep only the first ``limit`` usable records (reading stops there). Use it with the train file,
            whose 90,447 questions take several GB in memory.
        source_name: The suite's name and each task's ``source``.

    Returns:
        The tasks in file order, ids being the records' ``_id``.

    Raises:
        ConfigError: ``limit`` is not a positive int.
        DataError: The file is missing, not JSON, or holds a malformed record (the message names the file, the
            record's index and its id), or no usable record at all.

    Warns:
        UserWarning: Once, with the count, when records were skipped because none of their supporting facts names
            a context sentence, or single such facts were dropped.
    """
    check("limit", limit, "int", gt=0, optional=True)
    resolved = resolve_hotpotqa_path(path)
    stat = resolved.stat()
    key = (str(resolved), stat.st_mtime_ns, stat.st_size, limit, source_name)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    suite = _parse(resolved, limit, source_name)
    with _cache_lock:
        _cache[key] = suite
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return suite


class HotpotQAEnv(AgeMemEnv):
    """``AgeMem-HotpotQA-v0``: the AgeMem env over HotpotQA's distractor setting.

    Stage 1 shares the 2 gold paragraphs mixed with some of the question's distractors; stage 2 the remaining
    distractors (topped up from other questions when short); stage 3 asks the question. See
    :class:`~agemem_gym.env.AgeMemEnv` for the episode, spaces and rewards. Arguments of its own:

    | argument | default | meaning |
    |---|---|---|
    | ``data_path`` | ``None`` | the HotpotQA file or a directory holding it; else ``AGEMEM_HOTPOTQA_PATH``, else the cache |
    | ``limit`` | ``None`` | read only the first ``limit`` questions |

    Every other keyword goes to :class:`~agemem_gym.env.AgeMemEnv`.

    Raises:
        DataError: No HotpotQA file was found (the message says how to get one) or the file is malformed.
    """

    def __init__(
        self, *, data_path: str | os.PathLike[str] | None = None, limit: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(load_hotpotqa(data_path, limit=limit), **kwargs)
