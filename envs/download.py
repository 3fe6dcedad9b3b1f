"""Download dataset files with resume, checksum verification and a progress bar (standard library + tqdm).

A download writes to ``<dest>.part``. When that file already exists (an earlier run was interrupted), the
download resumes with an HTTP ``Range`` request; a server that ignores ``Range`` (it answers 200, not 206) is
handled by starting over. Once complete, the file's sha256 is checked and only then is it renamed into place
atomically, so ``dest`` is either absent or whole and verified.

Command line (installed as ``agemem-download``)::

    agemem-download hotpotqa --split dev            # into the cache directory, where the env looks
    agemem-download hotpotqa --split train --dest ./data
    agemem-download alfworld --url URL --sha256 HEX     # an ALFWorld game-file archive, unpacked into the cache
    agemem-download pddl --sha256 HEX                   # AgentBoard's PDDL games, installed into the cache

ALFWorld publishes no checksums for its archives, so ``agemem-download alfworld`` takes the sha256 from the user
(compute it once from a copy you trust, e.g. ``sha256sum json_2.1.1_json.zip``) and refuses to run without one.
AgentBoard publishes none either, so ``agemem-download pddl`` needs ``--sha256`` too.

AgentBoard's PDDL games: its README (https://github.com/hkust-nlp/AgentBoard, section "6.2 Download Link") points to
one data archive on the Hugging Face hub, https://huggingface.co/datasets/hkust-nlp/agentboard/resolve/main/data.tar.gz,
whose ``data/pddl/`` holds only ``test.jsonl`` (the goals and problem indices); the domain and problem files
themselves (``pddl/<game>.pddl`` and ``pddl/<game>/*.pddl``) are in AgentBoard's code repository, under
``agentboard/environment/pddl_env/pddlgym/pddl``. So the default URL is that repository's archive at a pinned commit
(:data:`AGENTBOARD_PDDL_URL`); ``--url`` takes any zip or tar archive with such a tree in it, wherever it lies.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from agemem_gym._validate import check
from agemem_gym._version import __version__
from agemem_gym.envs._paths import dataset_cache_dir
from agemem_gym.envs.hotpotqa import HOTPOTQA_FILES, HotpotQAFile, Split, hotpotqa_cache_dir
from agemem_gym.errors import ConfigError, DataError

__all__ = [
    "AGENTBOARD_COMMIT",
    "AGENTBOARD_PDDL_URL",
    "download",
    "download_alfworld",
    "download_hotpotqa",
    "download_pddl",
    "extract_archive",
    "find_pddl_tree",
    "main",
    "sha256_file",
]

logger = logging.getLogger(__name__)

_USER_AGENT = f"agemem-gym/{__version__} (+urllib)"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


def sha256_file(path: Path, *, chunk_size: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


class _RangeNotSatisfiable(Exception):
    """The server answered 416 to a resume: the part file is already whole, or longer than the remote file."""

    def __init__(self, total: int | None) -> None:
        super().__init__(total)
        self.total = total


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    """Send the request, with ``Range`` when resuming from ``offset``; HTTP and network failures raise DataError."""
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        with err:
            if err.code == 416 and offset:
                match = _UNSATISFIED_RANGE.search(err.headers.get("Content-Range", ""))
                raise _RangeNotSatisfiable(int(match.group(1)) if match else None) from err
        raise DataError(f"downloading {url} failed: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = err.reason if isinstance(err, urllib.error.URLError) else err
        raise DataError(f"could not reach {url}: {reason}; check the network connection and the URL") from err
    return response


def _copy(response: http.client.HTTPResponse, out: BinaryIO, bar: tqdm, chunk_size: int, url: str) -> None:
    """Stream the body into ``out``; a dropped connection keeps what arrived so the next run resumes."""
    try:
        while chunk := response.read(chunk_size):
            out.write(chunk)
            bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as err:  # IncompleteRead is an HTTPException
        raise DataError(f"downloading {url} was interrupted ({err!r}); run it again to resume") from err


def _range_start(response: http.client.HTTPResponse) -> int | None:
    """The first byte position of a 206 answer's ``Content-Range``, if any."""
    match = _CONTENT_RANGE.search(response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _fetch(url: str, part: Path, *, progress: bool, chunk_size: int, timeout: float) -> bool:
    """Bring ``part`` up to the whole remote file, resuming from its current size.

    Returns:
        Whether the download resumed from existing bytes (so a checksum mismatch may come from a stale part).
    """
    offset = part.stat().st_size if part.is_file() else 0
    try:
        response = _open(url, offset, timeout)
    except _RangeNotSatisfiable as err:
        if err.total is None or err.total == offset:
            return True  # nothing left to fetch; the checksum decides whether the part is right
        logger.info(
            "%s: the partial file (%d bytes) is longer than the remote one (%d); restarting", url, offset, err.total
        )
        part.unlink()
        return _fetch(url, part, progress=progress, chunk_size=chunk_size, timeout=timeout)
    with response:
        resumed = bool(offset) and response.status == 206 and _range_start(response) == offset
        if offset and not resumed:
            logger.info("%s: the server ignored the Range request; downloading from the start", url)
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None and length.isdigit() else None
        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name[: -len(".part")],
            disable=not progress,
        )
        with part.open("ab" if resumed else "wb") as out, bar:
            _copy(response, out, bar, chunk_size, url)
    size = part.stat().st_size
    if total is not None and size != total:
        raise DataError(f"downloading {url} stopped at {size} of {total} bytes; run it again to resume")
    return resumed


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None,
    progress: bool = True,
    chunk_size: int = 1 << 20,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming a partial download and verifying the sha256.

    If ``dest`` already exists and matches ``sha256`` (or ``sha256`` is ``None``), nothing is downloaded. The
    bytes go to ``dest.part`` first; a ``.part`` left by an interrupted run is resumed with a ``Range`` request.
    When a resumed file fails the checksum, the download starts over once from the beginning.

    Args:
        url: The file's URL (``http``, ``https`` or ``file``).
        dest: Where the file goes; parent directories are created.
        sha256: Expected hex digest, or ``None`` to skip verification (not recommended).
        progress: Show a tqdm progress bar on stderr.
        chunk_size: Bytes read per chunk.
        timeout: Socket timeout in seconds, per operation (not for the whole download).

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: ``chunk_size`` or ``timeout`` is not positive, or ``sha256`` is not 64 hex digits.
        DataError: The server answers with an HTTP error, cannot be reached, or the connection drops (run again to
            resume), or the finished file's sha256 differs from ``sha256`` (the part file is deleted; the message
            gives the expected and the actual digest).
    """
    check("chunk_size", chunk_size, "int", gt=0)
    check("timeout", timeout, "number", gt=0, unit="seconds")
    expected = sha256.lower() if sha256 is not None else None
    if expected is not None and not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise ConfigError(f"'sha256' must be 64 hex digits, got {sha256!r}")
    dest = Path(dest)
    if dest.is_file() and (expected is None or sha256_file(dest) == expected):
        logger.info("%s is already present%s", dest, " and verified" if expected else "")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest)
    for attempt in range(2):
        resumed = _fetch(url, part, progress=progress, chunk_size=chunk_size, timeout=timeout)
        actual = sha256_file(part) if expected is not None else None
        if actual == expected:
            os.replace(part, dest)
            return dest
        part.unlink()
        if not (resumed and attempt == 0):
            break
        logger.warning("%s: the resumed file failed its checksum; downloading it again from the start", url)
    raise DataError(
        f"sha256 mismatch for {url}: expected {expected}, actual {actual}; the downloaded file was deleted. "
        "Run again; if it persists, the server's file differs from the published one"
    )


def download_hotpotqa(
    split: Split = "dev",
    dest_dir: str | os.PathLike[str] | None = None,
    *,
    base_url: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download an official HotpotQA file (``dev``: distractor dev set, 44 MiB; ``train``: 540 MiB).

    Args:
        split: ``"dev"`` (``hotpot_dev_distractor_v1.json``) or ``"train"`` (``hotpot_train_v1.1.json``).
        dest_dir: Directory to save into; default the cache directory the loader searches
            (:func:`~agemem_gym.envs.hotpotqa.hotpotqa_cache_dir`).
        base_url: A mirror that serves the same file names; the official checksum is still enforced.
        progress: Show a progress bar.
        timeout: Socket timeout in seconds.

    Returns:
        The path of the verified file.

    Raises:
        ConfigError: ``split`` is neither ``"dev"`` nor ``"train"``.
        DataError: The download failed or the file does not match its published checksum.
    """
    spec: HotpotQAFile | None = HOTPOTQA_FILES.get(split)
    if spec is None:
        raise ConfigError(f"'split' must be one of {sorted(HOTPOTQA_FILES)}, got {split!r}")
    url = spec.url if base_url is None else base_url.rstrip("/") + "/" + spec.filename
    directory = Path(dest_dir).expanduser() if dest_dir is not None else hotpotqa_cache_dir()
    return download(url, directory / spec.filename, sha256=spec.sha256, progress=progress, timeout=timeout)


_NO_ALFWORLD_SHA = (
    "ALFWorld publishes no checksums for its archives, so pass the sha256 you expect (--sha256 HEX, or sha256= in "
    "Python): compute it once from a copy you trust, e.g. `sha256sum json_2.1.1_json.zip`"
)


def extract_archive(archive: Path, dest_dir: Path) -> Path:
    """Unpack a ``.zip`` or ``.tar[.gz|.bz2|.xz]`` into ``dest_dir``, refusing members that would land outside it
    (absolute paths, ``..``, links); the members go to a temporary directory first and are moved in at the end.

    Raises:
        DataError: The archive is not a zip or tar file, or has an unsafe member.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".extract-"))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                names = zf.namelist()
                _check_members(archive, names)
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                _check_members(archive, [m.name for m in members])
                bad = [m.name for m in members if not (m.isfile() or m.isdir())]
                if bad:
                    raise DataError(f"{archive} has links or special files ({bad[:3]}); refusing to unpack it")
                tf.extractall(tmp, filter="data") if hasattr(tarfile, "data_filter") else tf.extractall(tmp)
        else:
            raise DataError(f"{archive} is neither a zip nor a tar archive; check the URL")
        for child in tmp.iterdir():
            target = dest_dir / child.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(child, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest_dir


def _check_members(archive: Path, names: Sequence[str]) -> None:
    for name in names:
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts:
            raise DataError(f"{archive} has a member outside its root ({name!r}); refusing to unpack it")


def download_alfworld(
    url: str,
    sha256: str | None,
    dest_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download an ALFWorld game-file archive (e.g. ALFWorld's ``json_2.1.1_json.zip``), verify it against the
    sha256 the caller gives, and unpack it where :class:`~agemem_gym.envs.alfworld.ALFWorldEnv` looks.

    Args:
        url: The archive's URL (``http``, ``https`` or ``file``).
        sha256: The expected hex digest. Required: ALFWorld publishes none.
        dest_dir: Where to unpack (default :func:`~agemem_gym.envs.alfworld.alfworld_root`'s cache directory).
        progress: Show a progress bar.
        timeout: Socket timeout in seconds.

    Returns:
        The directory the archive was unpacked into.

    Raises:
        ConfigError: No sha256 (the message says how to get one), or it is not 64 hex digits.
        DataError: The download failed, the file does not match the sha256, or the archive is unsafe.
    """
    if not sha256:
        raise ConfigError(_NO_ALFWORLD_SHA)
    directory = Path(dest_dir).expanduser() if dest_dir is not None else dataset_cache_dir("alfworld")
    name = Path(urllib.parse.urlparse(url).path).name or "alfworld-archive"
    archive = download(url, directory / ".archives" / name, sha256=sha256, progress=progress, timeout=timeout)
    return extract_archive(archive, directory)


AGENTBOARD_COMMIT = "bb7255e2daf1989069a186dad9e53f70680961db"
"""The AgentBoard commit whose PDDL files the default URL fetches (its ``main`` when this was written)."""
AGENTBOARD_PDDL_URL = f"https://github.com/hkust-nlp/AgentBoard/archive/{AGENTBOARD_COMMIT}.tar.gz"
"""AgentBoard's code archive at :data:`AGENTBOARD_COMMIT`: the PDDL games are in it, not in the hub's data.tar.gz."""

_NO_PDDL_SHA = (
    "AgentBoard publishes no checksums (and GitHub builds its archives on request), so pass the sha256 you expect "
    "(--sha256 HEX, or sha256= in Python): compute it once from a copy you trust, e.g. `sha256sum "
    f"{AGENTBOARD_COMMIT}.tar.gz` after downloading {AGENTBOARD_PDDL_URL}"
)


def find_pddl_tree(root: Path) -> Path | None:
    """The shallowest directory under ``root`` (``root`` included) in AgentBoard's layout: a ``<game>.pddl`` domain
    file beside a ``<game>/`` directory of ``.pddl`` problems; among equally deep ones, one named ``pddl`` first.
    None when there is none."""
    found: list[tuple[int, bool, str, Path]] = []
    for directory, subdirs, files in os.walk(root):
        here = Path(directory)
        games = [f[: -len(".pddl")] for f in files if f.endswith(".pddl")]
        if any(g in subdirs and any((here / g).glob("*.pddl")) for g in games):
            found.append((len(here.relative_to(root).parts), here.name != "pddl", str(here), here))
    return min(found)[3] if found else None


def _install_pddl_tree(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` next to ``dest``, find its PDDL tree and swap it in with renames, so ``dest`` is either the
    old tree or the whole new one."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
    try:
        tree = find_pddl_tree(extract_archive(archive, staging / "unpacked"))
        if tree is None:
            raise DataError(
                f"{archive} has no PDDL tree in AgentBoard's layout (a <game>.pddl file beside a <game>/ directory "
                f"of problems); AgentBoard's are in its code archive ({AGENTBOARD_PDDL_URL}), not in the hub's "
                "data.tar.gz"
            )
        new, old = staging / "new", staging / "old"
        os.replace(tree, new)
        if dest.exists():
            os.replace(dest, old)
        try:
            os.replace(new, dest)
        except OSError:
            if old.exists():
                os.replace(old, dest)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def download_pddl(
    sha256: str | None,
    url: str = AGENTBOARD_PDDL_URL,
    dest_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download an archive with AgentBoard's PDDL games (default :data:`AGENTBOARD_PDDL_URL`), verify it against the
    sha256 the caller gives, and install its PDDL tree where ``PDDLEnv(game=...)`` looks.

    The archive is kept in ``<dest_dir's parent>/.archives`` (a second run with the same sha256 downloads nothing);
    the tree is unpacked beside ``dest_dir`` and renamed into place, replacing an earlier one.

    Args:
        sha256: The expected hex digest. Required: AgentBoard publishes none.
        url: The archive's URL (``http``, ``https`` or ``file``); any zip or tar with the tree somewhere inside.
        dest_dir: The directory that will hold ``<game>.pddl`` and ``<game>/`` (default
            :func:`~agemem_gym.envs.pddl.pddl_root`'s cache directory, ``<cache dir>/pddl/agentboard``).
        progress: Show a progress bar.
        timeout: Socket timeout in seconds.

    Returns:
        The installed tree's directory.

    Raises:
        ConfigError: No sha256 (the message says how to get one), or it is not 64 hex digits.
        DataError: The download failed, the file does not match the sha256, the archive is unsafe, or it has no PDDL
            tree.
    """
    if not sha256:
        raise ConfigError(_NO_PDDL_SHA)
    dest = Path(dest_dir).expanduser() if dest_dir is not None else dataset_cache_dir("pddl") / "agentboard"
    name = Path(urllib.parse.urlparse(url).path).name or "agentboard-archive"
    archive = download(url, dest.parent / ".archives" / name, sha256=sha256, progress=progress, timeout=timeout)
    return _install_pddl_tree(archive, dest)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agemem-download",
        description="Download a dataset for AgeMem-Gym, verify its checksum, and print where it went.",
    )
    parser.add_argument("dataset", choices=["hotpotqa", "alfworld", "pddl"], help="the dataset to download")
    parser.add_argument("--split", choices=sorted(HOTPOTQA_FILES), default="dev", help="which file (default: dev)")
    parser.add_argument(
        "--dest", metavar="DIR", default=None, help=f"directory to save into (default: {hotpotqa_cache_dir()})"
    )
    parser.add_argument("--base-url", metavar="URL", default=None, help="a mirror serving the official file names")
    parser.add_argument(
        "--url",
        metavar="URL",
        default=None,
        help=f"alfworld, pddl: the archive's URL (pddl default: {AGENTBOARD_PDDL_URL})",
    )
    parser.add_argument(
        "--sha256",
        metavar="HEX",
        default=None,
        help="alfworld, pddl: the archive's expected sha256 (neither ALFWorld nor AgentBoard publishes one)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout in seconds (default: 60)")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``agemem-download``; returns the exit status (0 on success, 1 on a download error)."""
    args = _parser().parse_args(argv)
    if args.dataset == "pddl":
        try:
            where = download_pddl(
                args.sha256,
                args.url or AGENTBOARD_PDDL_URL,
                args.dest,
                progress=not args.no_progress,
                timeout=args.timeout,
            )
        except (DataError, ConfigError) as err:
            print(f"agemem-download: error: {err}", file=sys.stderr)
            return 1
        games = sorted(p.stem for p in where.glob("*.pddl") if (where / p.stem).is_dir())
        print(f"AgentBoard's PDDL games installed into {where} (sha256 verified): {', '.join(games)}")
        hint = "" if args.dest is None else f", with data_path={str(where)!r} or AGEMEM_PDDL_PATH={where}"
        print(f"Play one with gym.make('AgeMem-PDDL-v0', game={games[0]!r}){hint}")
        return 0
    if args.dataset == "alfworld":
        try:
            if not args.url:
                raise ConfigError("agemem-download alfworld needs --url (the archive ALFWorld's download script names)")
            where = download_alfworld(
                args.url, args.sha256, args.dest, progress=not args.no_progress, timeout=args.timeout
            )
        except (DataError, ConfigError) as err:
            print(f"agemem-download: error: {err}", file=sys.stderr)
            return 1
        print(f"ALFWorld files unpacked into {where} (sha256 verified)")
        print(f"Point the env at it with data_path={str(where)!r} or AGEMEM_ALFWORLD_PATH={where}")
        return 0
    try:
        path = download_hotpotqa(
            args.split, args.dest, base_url=args.base_url, progress=not args.no_progress, timeout=args.timeout
        )
    except (DataError, ConfigError) as err:
        print(f"agemem-download: error: {err}", file=sys.stderr)
        return 1
    print(f"HotpotQA {args.split} file: {path} ({path.stat().st_size:,} bytes, sha256 verified)")
    if args.dest is not None and Path(args.dest).expanduser().resolve() != hotpotqa_cache_dir().resolve():
        print(f"Point the env at it with data_path={str(path)!r} or AGEMEM_HOTPOTQA_PATH={path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
