"""Tests for agemem_gym.envs.download against a local HTTP server (no network)."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agemem_gym.envs import download as dl
from agemem_gym.envs.hotpotqa import HotpotQAFile
from agemem_gym.errors import ConfigError, DataError

PAYLOAD = np.random.default_rng(0).integers(0, 256, size=300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /data.bin; honours ``Range: bytes=N-`` unless the server says otherwise."""

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))  # type: ignore[attr-defined]
        if self.path != "/data.bin":
            self.send_error(404, "Not Found")
            return
        body, start = PAYLOAD, None
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and server.honour_range:  # type: ignore[attr-defined]
            start = int(match.group(1))
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = PAYLOAD[start:]
        cut = server.cut_after  # type: ignore[attr-defined]
        self.send_response(206 if start is not None else 200)
        if start is not None:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:cut] if cut is not None else body)


class _Server(http.server.ThreadingHTTPServer):
    def __init__(self, honour_range: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.honour_range = honour_range
        self.cut_after: int | None = None
        self.requests: list[tuple[str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def _serve(honour_range: bool) -> Iterator[_Server]:
    server = _Server(honour_range)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def server() -> Iterator[_Server]:
    yield from _serve(honour_range=True)


@pytest.fixture
def no_range_server() -> Iterator[_Server]:
    yield from _serve(honour_range=False)


def test_full_download_writes_verified_file_and_no_part(server: _Server, tmp_path: Path) -> None:
    """A fresh download lands at dest with the right bytes and leaves no .part behind."""
    dest = tmp_path / "sub" / "data.bin"
    out = dl.download(server.url + "/data.bin", dest, sha256=SHA, progress=False)
    assert out == dest
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "data.bin.part").exists()
    assert server.requests == [("/data.bin", None)]


def test_existing_verified_file_is_not_downloaded_again(server: _Server, tmp_path: Path) -> None:
    """A dest that already matches the checksum is returned without a request."""
    dest = tmp_path / "data.bin"
    dest.write_bytes(PAYLOAD)
    dl.download(server.url + "/data.bin", dest, sha256=SHA, progress=False)
    assert server.requests == []


def test_resume_sends_range_and_appends(server: _Server, tmp_path: Path) -> None:
    """A pre-existing partial .part is completed with a Range request, not downloaded again."""
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:123_456])
    dl.download(server.url + "/data.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/data.bin", "bytes=123456-")]


def test_interrupted_download_resumes_on_the_next_run(server: _Server, tmp_path: Path) -> None:
    """A connection dropped mid-body raises DataError, keeps the bytes, and the next run resumes from them."""
    dest = tmp_path / "data.bin"
    server.cut_after = 100_000
    with pytest.raises(DataError, match="run it again to resume"):
        dl.download(server.url + "/data.bin", dest, sha256=SHA, progress=False)
    assert (tmp_path / "data.bin.part").stat().st_size == 100_000
    server.cut_after = None
    dl.download(server.url + "/data.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/data.bin", "bytes=100000-")


def test_server_ignoring_range_restarts_from_zero(no_range_server: _Server, tmp_path: Path) -> None:
    """When the server answers 200 to a Range request, the part is rewritten from the start, not appended to."""
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(b"x" * 5000)
    dl.download(no_range_server.url + "/data.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_answered_416_is_finalised(server: _Server, tmp_path: Path) -> None:
    """A .part that already holds the whole file (the server answers 416) is verified and moved into place."""
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    dl.download(server.url + "/data.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/data.bin", f"bytes={len(PAYLOAD)}-")]


def test_corrupt_part_restarts_once_then_succeeds(server: _Server, tmp_path: Path) -> None:
    """A resumed file that fails its checksum is downloaded again from zero before giving up."""
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(b"\0" * 1000)  # wrong bytes: the resumed file cannot match
    dl.download(server.url + "/data.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == ["bytes=1000-", None]


def test_checksum_mismatch_deletes_part_and_names_both_digests(server: _Server, tmp_path: Path) -> None:
    """A wrong checksum raises DataError with expected and actual digests, and leaves neither dest nor .part."""
    dest = tmp_path / "data.bin"
    wrong = "0" * 64
    with pytest.raises(DataError, match=f"expected {wrong}, actual {SHA}"):
        dl.download(server.url + "/data.bin", dest, sha256=wrong, progress=False)
    assert not dest.exists()
    assert not (tmp_path / "data.bin.part").exists()


def test_http_404_raises_data_error_with_status(server: _Server, tmp_path: Path) -> None:
    """An HTTP error names the URL and the status."""
    with pytest.raises(DataError, match=r"missing\.bin failed: HTTP 404"):
        dl.download(server.url + "/missing.bin", tmp_path / "x", sha256=SHA, progress=False)
    assert not (tmp_path / "x").exists()


def test_unreachable_host_raises_data_error(tmp_path: Path) -> None:
    """A closed port gives a DataError that says the host could not be reached."""
    with _Server(True) as closed:  # bound, never served, then closed: nothing listens on the port
        url = closed.url
    with pytest.raises(DataError, match="could not reach"):
        dl.download(url + "/data.bin", tmp_path / "x", sha256=SHA, progress=False, timeout=5)


def test_bad_arguments_raise_config_error(tmp_path: Path) -> None:
    """Malformed checksum, chunk size or timeout are programmer errors."""
    with pytest.raises(ConfigError, match="'sha256' must be 64 hex digits"):
        dl.download("http://127.0.0.1/x", tmp_path / "x", sha256="abc")
    with pytest.raises(ConfigError, match="'chunk_size'"):
        dl.download("http://127.0.0.1/x", tmp_path / "x", sha256=None, chunk_size=0)
    with pytest.raises(ConfigError, match="'split' must be one of"):
        dl.download_hotpotqa("test", tmp_path)  # type: ignore[arg-type]


def test_cli_downloads_into_cache_dir(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`agemem-download hotpotqa --split dev` saves into the cache directory and prints the path."""
    monkeypatch.setenv("AGEMEM_CACHE_DIR", str(tmp_path / "cache"))
    fake = HotpotQAFile("hotpot_dev_distractor_v1.json", server.url + "/data.bin", SHA, len(PAYLOAD))
    monkeypatch.setitem(dl.HOTPOTQA_FILES, "dev", fake)
    assert dl.main(["hotpotqa", "--split", "dev", "--no-progress", "--base-url", server.url + "/"]) == 1
    # the mirror serves /data.bin, not the official name: the error is reported, not raised
    assert "HTTP 404" in capsys.readouterr().err
    assert dl.main(["hotpotqa", "--split", "dev", "--no-progress"]) == 0
    target = tmp_path / "cache" / "hotpotqa" / "hotpot_dev_distractor_v1.json"
    assert target.read_bytes() == PAYLOAD
    assert str(target) in capsys.readouterr().out


def test_cli_dest_option(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dest puts the file in the given directory and tells how to point the env at it."""
    fake = HotpotQAFile("hotpot_train_v1.1.json", server.url + "/data.bin", SHA, len(PAYLOAD))
    monkeypatch.setitem(dl.HOTPOTQA_FILES, "train", fake)
    assert dl.main(["hotpotqa", "--split", "train", "--dest", str(tmp_path / "d"), "--no-progress"]) == 0
    assert (tmp_path / "d" / "hotpot_train_v1.1.json").read_bytes() == PAYLOAD
    assert "AGEMEM_HOTPOTQA_PATH" in capsys.readouterr().out


def test_part_longer_than_remote_restarts(server: _Server, tmp_path: Path) -> None:
    """A .part longer than the remote file (416 with a smaller size) is discarded and downloaded afresh."""
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD + b"junk")
    dl.download(server.url + "/data.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [f"bytes={len(PAYLOAD) + 4}-", None]


def test_stale_dest_with_wrong_checksum_is_replaced(server: _Server, tmp_path: Path) -> None:
    """An existing dest that fails the checksum is downloaded again and replaced atomically."""
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"old contents")
    dl.download(server.url + "/data.bin", dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
