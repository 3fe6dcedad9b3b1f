"""The benchmarks run at tiny sizes and produce well-formed results (so that they cannot rot); no timing is judged."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import report
from benchmarks.corpus import embed_cached, load_corpus
from benchmarks.memory_ops import _plan as replica_plan
from benchmarks.records import REPO, Record, Results, jsonable, read_results
from benchmarks.timing import Timed, interleaved, loglog_slope, recall_at_k, stats


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Results, Path]:
    """One ``--quick`` run of the whole report (hashing embedder, tiny model) into a temporary folder."""
    out = tmp_path_factory.mktemp("bench")
    args = report.Args(
        quick=True, embedders=("hash",), trainer_models=("tiny",), out_dir=out, cache_dir=out / "cache", quiet=True
    )
    return report.main(args), out


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _one(records: list[Record]) -> Record:
    assert len(records) == 1, records
    return records[0]


def test_quick_report_writes_every_output(quick_results: tuple[Results, Path]) -> None:
    """results.jsonl (strict JSON, one record per line), report.md and the four plots are written."""
    results, out = quick_results
    lines = (out / "results.jsonl").read_text().splitlines()
    rows = [json.loads(line, parse_constant=pytest.fail) for line in lines]
    assert set(rows[0]) == {"meta"} and {"machine", "corpus", "args"} <= set(rows[0]["meta"])
    assert all("benchmark" in r and "metric" in r and "value" in r for r in rows[1:])
    assert {r["benchmark"] for r in rows[1:]} >= {"memory_ops", "recall", "batched", "footprint", "env_step"}
    assert {"make_vec", "trainer", "profile"} <= {r["benchmark"] for r in rows[1:]}
    assert read_results(out / "results.jsonl").records == results.records
    for name in ("ops_by_size.png", "overhead_ratio.png", "step_cost.png", "growth.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "report.md").read_text()
    for heading in ("## Targets", "## Memory operations", "## Recall", "## Environment cost", "## gym.make_vec"):
        assert heading in text
    assert str(REPO) not in (out / "results.jsonl").read_text()  # no paths of this machine in what gets committed


def test_machine_description_names_versions_and_load(quick_results: tuple[Results, Path]) -> None:
    """The results say which code ran where, and how loaded the machine was."""
    meta = quick_results[0].meta
    m = meta["machine"]
    assert m["cpu_count"] >= 1 and m["packages"]["hnswlib"] and m["python"]
    assert "commit" in m and "load_average_start" in m and "load_average_end" in meta


def test_memory_ops_have_positive_timings_recall_in_range_and_no_errors(quick_results: tuple[Results, Path]) -> None:
    """Every op of every size has positive medians for the API and its baselines, and recall lies in [0, 1]."""
    res = quick_results[0]
    ops = res.select("memory_ops", embedder="hash", metric="latency")
    sizes = sorted({r["size"] for r in ops})
    assert sizes
    for n in sizes:
        at = res.select("memory_ops", embedder="hash", size=n)
        assert {r["op"] for r in at if r["op"]} == {
            "RETRIEVE@3",
            "RETRIEVE@5",
            "RETRIEVE@10",
            *report.memory_ops.LTM_OPS,
        } | set(report.memory_ops.STM_OPS)
        for op in {r["op"] for r in at if r["op"]}:
            assert _one(select_(at, op=op, metric="errors")).value == 0, op
            for r in select_(at, op=op, metric="latency", series=("api", "raw", "exact", "embed")):
                assert _positive(r.value) and r.p99 is not None and r.p99 >= r.value
                assert _positive(1e6 / r.mean) and r.repeats and r.repeats > 0
            assert _positive(_one(select_(at, op=op, metric="latency", series="api")).ratio)
        recall = res.select("recall", embedder="hash", size=n, metric="recall")
        assert {r["index"] for r in recall} == {"store", "raw"} and any(r["ef"] for r in recall)
        for r in recall:
            assert r.value is not None and 0.0 <= r.value <= 1.0, r
        for kind in ("search", "add"):
            for series in ("store_batch", "raw_loop"):
                assert _positive(_one(res.select("batched", size=n, call=kind, series=series)).value)
        fp = {r.metric: r.value for r in res.select("footprint", embedder="hash", size=n)}
        assert fp["vector_matrix_bytes_per_item"] >= fp["raw_vector_bytes_per_item"] > 0
        assert _positive(fp["store_bytes_per_item"]) and _positive(fp["snapshot_bytes_per_item"])
        assert _one(res.select("memory_ops", size=n, metric="rebuilds_while_timing")).value == 0


def select_(records: list[Record], **where: object) -> list[Record]:
    return [r for r in records if r.matches(**where)]


def test_env_steps_cover_every_cell_and_variant(quick_results: tuple[Results, Path]) -> None:
    """Each (size, context) cell has steps with positive timings; each make_vec variant made transitions."""
    res = quick_results[0]
    cells = {(r["size"], r["context"]) for r in res.select("env_step")}
    assert len(cells) >= 2
    for size, context in cells:
        at = res.select("env_step", size=size, context=context)
        step = _one(select_(at, action="all", series="step"))
        assert step.repeats and step.repeats > 0 and (_one(select_(at, metric="episodes")).value or 0) >= 1
        assert _positive(step.value) and _one(select_(at, action="all", series="step_excl_embed")).value is not None
        assert (_one(select_(at, metric="context_tokens_mean")).value or 0) > 0
        assert select_(at, action=lambda a: a not in (None, "all"))  # steps by kind
    vec = res.select("make_vec", metric="steps_per_s")
    assert {r["variant"] for r in vec} == {"single", "syncx2", "asyncx2"}
    assert all(r.repeats and r.repeats > 0 and _positive(r.value) for r in vec)
    env_profile = [r for r in res.select("profile") if str(r["profile"]).startswith("env step")]
    assert {r["part"] for r in env_profile} >= {"tree", "top"}


def test_trainer_throughput_and_targets(quick_results: tuple[Results, Path]) -> None:
    """The tiny model's tokens/s and its baselines are positive; every target has a verdict."""
    res = quick_results[0]
    trainer = {r.metric: r for r in res.select("trainer", model="tiny")}
    assert _positive(trainer["rollout_tokens_per_s"].value) and _positive(trainer["learn_tokens_per_s"].value)
    baselines = ("policy_generate_tokens_per_s", "hf_generate_tokens_per_s", "forward_backward_tokens_per_s")
    assert all(_positive(trainer[b].value) for b in baselines)
    targets = report.derived.targets(res.records)
    measured = [t for t in targets if t.metric == "measured"]
    assert measured and all(t["status"] in ("met", "missed") for t in measured)


def test_render_only_rerenders_from_results_jsonl(quick_results: tuple[Results, Path], tmp_path: Path) -> None:
    """--render-only rebuilds report.md from a results.jsonl without measuring."""
    _, out = quick_results
    report.main(report.Args(render_only=out / "results.jsonl", out_dir=tmp_path, plots=False, quiet=True))
    assert (tmp_path / "report.md").read_text() == (out / "report.md").read_text()


def test_benchmark_suites_run_under_pytest_benchmark() -> None:
    """The bench_*.py suites collect and run once each (pytest-benchmark disabled: no timing)."""
    env = {**os.environ, "AGEMEM_BENCH_QUICK": "1", "AGEMEM_BENCH_MODELS": "", "AGEMEM_BENCH_VARIANTS": "single"}
    command = [sys.executable, "-m", "pytest", "benchmarks", "-o", "python_files=bench_*.py", "-p", "no:cacheprovider"]
    proc = subprocess.run(
        [*command, "-q", "--benchmark-disable", "-x"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


# ---- the pure pieces ----


def test_recall_at_k_counts_ties_and_short_answers() -> None:
    """recall@k is 1 for the exact answer, counts ties at the k-th score, and falls when fewer rows come back."""
    vectors = np.eye(4, dtype=np.float32)
    queries = np.array([[1.0, 0.5, 0.5, 0.0]], dtype=np.float32)
    assert recall_at_k([[0, 1]], queries, vectors, 2) == 1.0
    assert recall_at_k([[0, 2]], queries, vectors, 2) == 1.0  # rows 1 and 2 tie at the 2nd score
    assert recall_at_k([[3, 0]], queries, vectors, 2) == 0.5
    assert recall_at_k([[0]], queries, vectors, 2) == 0.5


def test_interleaved_times_every_series_after_burn_in_and_skips_setup() -> None:
    """Each series gets `calls` timings; a Timed set-up runs before each call and is not timed."""
    seen: list[tuple[str, int]] = []
    out = interleaved(
        {"a": lambda i: seen.append(("a", i)), "b": Timed(run=lambda i: None, setup=lambda i: seen.append(("s", i)))},
        calls=3,
        burn_in=2,
    )
    assert {k: len(v) for k, v in out.items()} == {"a": 3, "b": 3}
    assert [i for name, i in seen if name == "a"] == [0, 1, 2, 3, 4]
    assert [i for name, i in seen if name == "s"] == [0, 1, 2, 3, 4]
    s = stats([1e-6, 2e-6, 3e-6])
    assert s["median_us"] == pytest.approx(2.0) and s["ops_per_s"] == pytest.approx(500_000)


def test_loglog_slope_and_jsonable() -> None:
    """Slopes read 1 for linear growth and 0 for flat; jsonable makes strict JSON with relative paths."""
    assert loglog_slope([1e3, 1e4, 1e5], [1.0, 10.0, 100.0]) == pytest.approx(1.0)
    assert loglog_slope([1e3, 1e4], [5.0, 5.0]) == pytest.approx(0.0)
    assert jsonable({"a": float("nan"), "b": (np.float32(1.5), np.int64(2)), "p": REPO / "benchmarks"}) == {
        "a": None,
        "b": [1.5, 2],
        "p": "benchmarks",
    }


def test_replica_plan_keeps_stores_within_their_share() -> None:
    """Mutating series spread over replicas so that no store moves by more than the share of its items."""
    assert replica_plan(100, 330, 1, 0.2) == (17, 20)
    assert replica_plan(100_000, 330, 1, 0.2) == (1, 20_000)
    assert replica_plan(100, 12, 64, 0.2) == (12, 1)


def test_vector_cache_round_trips(tmp_path: Path) -> None:
    """Vectors are cached per chunk of texts and read back from the cache instead of being embedded again."""
    texts = load_corpus(50).items[:40]
    first = embed_cached("hash", texts, cache_dir=tmp_path, chunk=16, log=lambda _m: None)
    assert first.shape == (40, 256) and np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    files = sorted(tmp_path.glob("vectors-hash-256-*.npy"))
    assert len(files) == 3
    np.testing.assert_array_equal(first, embed_cached("hash", texts, cache_dir=tmp_path, chunk=16))
    marked = np.load(files[0]) * 0 + 0.5  # a cache hit returns what the file holds
    np.save(files[0], marked)
    assert any(np.all(row == 0.5) for row in embed_cached("hash", texts, cache_dir=tmp_path, chunk=16))
