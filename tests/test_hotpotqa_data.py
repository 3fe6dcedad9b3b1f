"""Tests for agemem_gym.envs.hotpotqa: reading the official and Hugging Face layouts, errors, paths, caching."""

from __future__ import annotations

import gzip
import json
import os
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agemem_gym.envs import hotpotqa as hq
from agemem_gym.envs.hotpotqa import (
    HOTPOTQA_FILES,
    clear_hotpotqa_cache,
    hf_record_to_official,
    load_hotpotqa,
    resolve_hotpotqa_path,
)
from agemem_gym.envs.synthetic import make_synthetic_suite
from agemem_gym.errors import ConfigError, DataError

SAMPLE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hotpotqa"
SAMPLE = SAMPLE_DIR / "hotpot_dev_distractor_sample1000.json.gz"
needs_sample = pytest.mark.skipif(
    not SAMPLE.is_file(), reason=f"the HotpotQA sample is not at {SAMPLE} (it sits beside the checkout, not in it)"
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the user's environment, cache directory or another test's cached suites."""
    monkeypatch.delenv("AGEMEM_HOTPOTQA_PATH", raising=False)
    monkeypatch.setenv("AGEMEM_CACHE_DIR", str(tmp_path / "cache"))
    clear_hotpotqa_cache()


def official_records(n: int = 12) -> list[dict[str, Any]]:
    """HotpotQA-layout records (from the synthetic suite, so these tests need no data)."""
    return [t.to_dict() for t in make_synthetic_suite(n, seed=11)]


def to_hf(record: dict[str, Any]) -> dict[str, Any]:
    """The Hugging Face `hotpot_qa` layout of an official record (written here independently of the library)."""
    return {
        "id": record["_id"],
        "question": record["question"],
        "answer": record["answer"],
        "type": record["type"],
        "level": record["level"],
        "supporting_facts": {
            "title": [f[0] for f in record["supporting_facts"]],
            "sent_id": [f[1] for f in record["supporting_facts"]],
        },
        "context": {"title": [c[0] for c in record["context"]], "sentences": [c[1] for c in record["context"]]},
    }


def write(path: Path, records: list[Any], *, jsonl: bool = False, gz: bool = False) -> Path:
    text = "\n".join(json.dumps(r) for r in records) + "\n" if jsonl else json.dumps(records, indent=1)
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


# -- the real sample ---------------------------------------------------------------------------------------------


@needs_sample
def test_sample_loads_with_expected_counts() -> None:
    """The 1000-question sample gives 1000 tasks, 778 bridge and 222 comparison, all with 2 gold paragraphs."""
    suite = load_hotpotqa(SAMPLE)
    assert len(suite) == 1000 and suite.name == "hotpotqa"
    assert Counter(t.qtype for t in suite) == {"bridge": 778, "comparison": 222}
    assert Counter(len(t.gold_paragraphs) for t in suite) == {2: 1000}
    assert Counter(len(t.paragraphs) for t in suite)[10] == 994
    assert {t.level for t in suite} == {"hard"} and {t.source for t in suite} == {"hotpotqa"}
    assert suite[0].task_id == "5a8b57f25542995d1e6f1371"


@needs_sample
def test_sample_supporting_facts_resolve_to_their_sentences() -> None:
    """Every supporting fact names a sentence of its paragraph and carries that sentence's text."""
    for task in load_hotpotqa(SAMPLE):
        by_title = {p.title: p for p in task.paragraphs}
        for f in task.supporting_facts:
            assert by_title[f.title].sentences[f.sent_idx].strip() == f.text


@needs_sample
def test_sample_in_hf_jsonl_layout_gives_the_same_suite(tmp_path: Path) -> None:
    """The real records converted to the Hugging Face layout, as JSON Lines, load to the same tasks."""
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as f:
        records = json.load(f)[:50]
    path = write(tmp_path / "hf.jsonl", [to_hf(r) for r in records], jsonl=True)
    assert list(load_hotpotqa(path)) == list(load_hotpotqa(SAMPLE, limit=50))


# -- layouts and encodings --------------------------------------------------------------------------------------


def test_all_layouts_and_encodings_give_equal_suites(tmp_path: Path) -> None:
    """Official/HF layout x JSON list/JSON Lines x plain/gzip (even gzip without a .gz name) all load alike."""
    records = official_records()
    hf = [to_hf(r) for r in records]
    paths = [
        write(tmp_path / "a.json", records),
        write(tmp_path / "b.json.gz", records, gz=True),
        write(tmp_path / "c.json", records, gz=True),  # gzip detected by its magic bytes
        write(tmp_path / "d.jsonl", records, jsonl=True),
        write(tmp_path / "e.json", hf),
        write(tmp_path / "f.jsonl.gz", hf, jsonl=True, gz=True),
    ]
    for name, separators in (("g.json", (", ", ": ")), ("h.json", (",", ":"))):  # json.dump's and compact spacing
        (tmp_path / name).write_text(json.dumps(records, separators=separators))
        paths.append(tmp_path / name)
    suites = [list(load_hotpotqa(p)) for p in paths]
    assert len(suites[0]) == len(records)
    assert all(s == suites[0] for s in suites[1:])
    assert suites[0][3].question == records[3]["question"]


def test_records_split_across_read_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny read size (records and separators split across chunks) gives the same suite."""
    records = official_records()
    path = write(tmp_path / "a.json", records)
    expected = list(load_hotpotqa(path))
    clear_hotpotqa_cache()
    monkeypatch.setattr(hq, "_READ_CHARS", 7)
    assert list(load_hotpotqa(path)) == expected


def test_hf_list_of_dicts_supporting_facts() -> None:
    """HF records whose supporting facts are a list of {title, sent_id} are converted too."""
    hf = to_hf(official_records(1)[0])
    hf["supporting_facts"] = [
        {"title": t, "sent_id": i} for t, i in zip(hf["supporting_facts"]["title"], hf["supporting_facts"]["sent_id"])
    ]
    assert hf_record_to_official(hf)["supporting_facts"] == official_records(1)[0]["supporting_facts"]


def test_limit_keeps_the_first_records(tmp_path: Path) -> None:
    """limit=n returns the first n tasks in file order."""
    records = official_records()
    suite = load_hotpotqa(write(tmp_path / "a.json", records), limit=5)
    assert [t.task_id for t in suite] == [r["_id"] for r in records[:5]]


@pytest.mark.parametrize("limit", [0, -1, 2.0, True])
def test_bad_limit_raises_config_error(tmp_path: Path, limit: Any) -> None:
    """A limit that is not a positive int is a ConfigError."""
    with pytest.raises(ConfigError, match="'limit' must be a positive int or None"):
        load_hotpotqa(write(tmp_path / "a.json", official_records(2)), limit=limit)


# -- malformed data ---------------------------------------------------------------------------------------------


def test_malformed_record_names_file_index_and_id(tmp_path: Path) -> None:
    """A record with a wrong field type raises DataError naming the file, the record index and its id."""
    records = official_records()
    records[4]["question"] = 42
    path = write(tmp_path / "bad.json", records)
    with pytest.raises(
        DataError, match=rf"bad\.json: record #4 \(id '{records[4]['_id']}'\).*'question' must be a str"
    ):
        load_hotpotqa(path)


def test_non_object_record_is_named(tmp_path: Path) -> None:
    """A record that is not a JSON object is rejected with its index."""
    path = write(tmp_path / "bad.jsonl", [*official_records(2), [1, 2]], jsonl=True)
    with pytest.raises(DataError, match=r"record #2 \(id <not a JSON object>\)"):
        load_hotpotqa(path)


def test_malformed_hf_record_is_named(tmp_path: Path) -> None:
    """An HF record whose context lists disagree in length names the record."""
    hf = [to_hf(r) for r in official_records(3)]
    hf[1]["context"]["title"].pop()
    with pytest.raises(DataError, match=r"record #1 .*titles but"):
        load_hotpotqa(write(tmp_path / "hf.json", hf))


def test_truncated_json_is_a_data_error(tmp_path: Path) -> None:
    """A file cut in the middle of a record raises DataError naming the record and suggesting a new download."""
    path = write(tmp_path / "cut.json", official_records(4))
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 3 // 4])
    with pytest.raises(DataError, match=r"cut\.json: record #\d is not valid JSON.*download it again"):
        load_hotpotqa(path)


def test_truncated_gzip_is_a_data_error(tmp_path: Path) -> None:
    """A cut gzip stream raises DataError, not EOFError."""
    path = write(tmp_path / "cut.json.gz", official_records(4), gz=True)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_hotpotqa(path)


def test_non_utf8_file_is_a_data_error(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 give a DataError that says so."""
    path = tmp_path / "x.json"
    path.write_bytes(b'[{"_id": "\xff\xfe"}]')
    with pytest.raises(DataError, match="not UTF-8"):
        load_hotpotqa(path)


@pytest.mark.parametrize("content", ["", "[]", "  \n"])
def test_empty_file_is_a_data_error(tmp_path: Path, content: str) -> None:
    """A file with no records raises DataError."""
    path = tmp_path / "empty.json"
    path.write_text(content)
    with pytest.raises(DataError, match="holds no records"):
        load_hotpotqa(path)


def test_duplicate_ids_are_a_data_error(tmp_path: Path) -> None:
    """Two records with one id raise DataError naming both indices."""
    records = official_records(3)
    records[2]["_id"] = records[0]["_id"]
    with pytest.raises(DataError, match=r"record #2 .*also belongs to record #0"):
        load_hotpotqa(write(tmp_path / "dup.json", records))


def test_unresolvable_records_are_skipped_with_one_counted_warning(tmp_path: Path) -> None:
    """Records whose supporting facts name no context sentence are skipped, and one warning gives the count."""
    records = official_records(6)
    for r in records[1:3]:
        r["supporting_facts"] = [["No Such Title", 0]]
    records[4]["supporting_facts"].append([records[4]["context"][0][0], 99])  # one bad fact among good ones
    path = write(tmp_path / "skip.json", records)
    with pytest.warns(UserWarning) as caught:
        suite = load_hotpotqa(path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "skipped 2 of 6 records" in message and "dropped 1 supporting facts" in message
    assert [t.task_id for t in suite] == [records[i]["_id"] for i in (0, 3, 4, 5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_hotpotqa(path)  # served from the cache: no second warning


def test_zero_usable_records_is_a_data_error(tmp_path: Path) -> None:
    """A file whose every record is unusable raises DataError (after the skip warning)."""
    records = official_records(2)
    for r in records:
        r["supporting_facts"] = []
    with pytest.warns(UserWarning, match="skipped 2 of 2"), pytest.raises(DataError, match="none is usable"):
        load_hotpotqa(write(tmp_path / "none.json", records))


# -- caching ----------------------------------------------------------------------------------------------------


def test_suites_are_cached_until_the_file_changes(tmp_path: Path) -> None:
    """A second load returns the same object; a rewritten file is parsed again; limits are cached apart."""
    path = write(tmp_path / "a.json", official_records(4))
    first = load_hotpotqa(path)
    assert load_hotpotqa(path) is first
    assert load_hotpotqa(str(path)) is first
    assert load_hotpotqa(path, limit=2) is not first
    write(path, official_records(3))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert len(load_hotpotqa(path)) == 3


# -- finding the file -------------------------------------------------------------------------------------------


def _touch(path: Path, records: list[dict[str, Any]] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write(path, records or official_records(1))


def test_explicit_path_beats_env_var_beats_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit path wins over AGEMEM_HOTPOTQA_PATH, which wins over the cache directory."""
    cached = _touch(tmp_path / "cache" / "hotpotqa" / "hotpot_dev_distractor_v1.json")
    from_env = _touch(tmp_path / "env" / "mine.json")
    explicit = _touch(tmp_path / "explicit.json")
    assert resolve_hotpotqa_path() == cached.resolve()
    monkeypatch.setenv("AGEMEM_HOTPOTQA_PATH", str(from_env))
    assert resolve_hotpotqa_path() == from_env.resolve()
    assert resolve_hotpotqa_path(explicit) == explicit.resolve()


def test_directory_prefers_dev_then_train_then_samples(tmp_path: Path) -> None:
    """In a directory the dev distractor file is chosen first, then the train file, then a sample."""
    d = tmp_path / "data"
    sample = _touch(d / "hotpot_dev_distractor_sample1000.json.gz")
    (d / "hotpot_dev_distractor_sample1000.json.gz.part").write_text("partial")
    assert resolve_hotpotqa_path(d) == sample.resolve()
    train = _touch(d / "hotpot_train_v1.1.json")
    assert resolve_hotpotqa_path(d) == train.resolve()
    dev = _touch(d / "hotpot_dev_distractor_v1.json")
    assert resolve_hotpotqa_path(d) == dev.resolve()


def test_env_var_may_name_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AGEMEM_HOTPOTQA_PATH may name a directory holding a known file."""
    dev = _touch(tmp_path / "d" / "hotpot_dev_distractor_v1.json.gz")
    monkeypatch.setenv("AGEMEM_HOTPOTQA_PATH", str(tmp_path / "d"))
    assert resolve_hotpotqa_path() == dev.resolve()


def test_named_paths_that_miss_are_errors_not_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing explicit path, a bad env var, or a directory without a known file raise; nothing falls through."""
    _touch(tmp_path / "cache" / "hotpotqa" / "hotpot_dev_distractor_v1.json")
    with pytest.raises(DataError, match="does not exist"):
        resolve_hotpotqa_path(tmp_path / "nope.json")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(DataError, match=r"holds no HotpotQA file.*agemem-download hotpotqa --split dev --dest"):
        resolve_hotpotqa_path(tmp_path / "emptydir")
    monkeypatch.setenv("AGEMEM_HOTPOTQA_PATH", str(tmp_path / "nope"))
    with pytest.raises(DataError, match=r"\$AGEMEM_HOTPOTQA_PATH is .*does not exist"):
        resolve_hotpotqa_path()


def test_not_found_message_says_how_to_get_the_data(tmp_path: Path) -> None:
    """With nothing anywhere, the error lists the three ways to get the data and where it looked."""
    with pytest.raises(DataError) as info:
        load_hotpotqa()
    message = str(info.value)
    cache = str(tmp_path / "cache" / "hotpotqa")
    assert "HotpotQA data not found" in message
    assert 'data_path="' in message
    assert "AGEMEM_HOTPOTQA_PATH" in message
    assert "agemem-download hotpotqa --split dev" in message
    assert message.count(cache) == 2  # where it looked, and where the download goes


def test_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AGEMEM_CACHE_DIR beats XDG_CACHE_HOME, which beats ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hq.hotpotqa_cache_dir() == tmp_path / "cache" / "hotpotqa"
    monkeypatch.delenv("AGEMEM_CACHE_DIR")
    assert hq.hotpotqa_cache_dir() == tmp_path / "xdg" / "agemem_gym" / "hotpotqa"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hq.hotpotqa_cache_dir() == tmp_path / "home" / ".cache" / "agemem_gym" / "hotpotqa"


def test_official_file_table() -> None:
    """Both official files have their published URL, a 64-hex sha256 and a size."""
    assert set(HOTPOTQA_FILES) == {"dev", "train"}
    for spec in HOTPOTQA_FILES.values():
        assert spec.url == "http://curtis.ml.cmu.edu/datasets/hotpot/" + spec.filename
        assert spec.sha256 is not None and re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
        assert spec.num_bytes is not None and spec.num_bytes > 10**7


@pytest.mark.parametrize("field", ["_id", "question", "context"])
def test_lone_surrogates_in_a_record_are_a_data_error(tmp_path: Path, field: str) -> None:
    """A JSON escape such as "\\ud800" in an id, question or sentence is rejected naming the record, before any
    reset() could hash or show it."""
    records = official_records(3)
    if field == "context":
        records[1]["context"][0][1][0] += "\ud800"
    else:
        records[1][field] += "\ud800"
    path = tmp_path / "sur.json"
    path.write_text(json.dumps(records), encoding="ascii")  # ensure_ascii writes the escape "\ud800"
    with pytest.raises(DataError, match=r"sur\.json: record #1 .*lone UTF-16 surrogates"):
        load_hotpotqa(path)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"_id": "x", "n": ' + "1" * 5000 + "}", r"record #2 holds a value Python refuses \(Exceeds the limit"),
        ("[" * 100_000 + "]" * 100_000, r"record #2 nests too deeply"),
    ],
)
@pytest.mark.parametrize("jsonl", [False, True])
def test_huge_integers_and_deep_nesting_name_the_file_and_record(
    tmp_path: Path, payload: str, message: str, jsonl: bool
) -> None:
    """A 5,000-digit integer or 100,000 levels of brackets is a DataError naming the file and record, not a
    raw ValueError or RecursionError."""
    good = [json.dumps(r) for r in official_records(2)]
    text = "\n".join([*good, payload]) if jsonl else "[" + ", ".join([*good, payload]) + "]"
    path = tmp_path / "odd.json"
    path.write_text(text)
    with pytest.raises(DataError, match=rf"odd\.json: {message}"):
        load_hotpotqa(path)


@pytest.mark.parametrize("tail", ["garbage", '{"_id": "extra"}', "]"])
def test_text_after_the_top_level_list_is_a_data_error(tmp_path: Path, tail: str) -> None:
    """Anything but whitespace after the closing bracket (a joined or damaged file) is refused, not ignored."""
    path = tmp_path / "tail.json"
    path.write_text(json.dumps(official_records(2)) + "\n" + tail)
    with pytest.raises(DataError, match=r"tail\.json: unexpected text .* after the top-level list of 2 records"):
        load_hotpotqa(path)
    path.write_text(json.dumps(official_records(2)) + " \n\t")
    assert len(load_hotpotqa(path)) == 2


def test_records_with_an_empty_answer_are_skipped_and_counted(tmp_path: Path) -> None:
    """A record whose answer is empty cannot be scored: it is skipped with a counted warning, never loaded; built
    directly, such a task is a DataError."""
    from agemem_gym.task import Task

    records = official_records(4)
    records[1]["answer"] = "  "
    with pytest.warns(UserWarning, match=r"skipped 1 of 4 records with an empty answer \(e\.g\. '"):
        suite = load_hotpotqa(write(tmp_path / "empty.json", records))
    assert records[1]["_id"] not in suite and len(suite) == 3
    with pytest.raises(DataError, match=r"field 'answer' is empty"):
        Task.from_dict(records[1])
