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
from benchmarks.common import (
    REPO,
    Timed,
    embed_cached,
    interleaved,
    jsonable,
    load_corpus,
    loglog_slope,
    recall_at_k,
    stats,
)
from benchmarks.memory_ops import _plan as replica_plan


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """One ``--quick`` run of the whole report (hashing embedder, tiny model) into a temporary folder."""
    out = tmp_path_factory.mktemp("bench")
    args = report.Args(
        quick=True, embedders=("hash",), trainer_models=("tiny",), out_dir=out, cache_dir=out / "cache", quiet=True
    )
    return report.main(args), out


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_quick_report_writes_every_output(quick_results: tuple[dict, Path]) -> None:
    """results.json (strict JSON), report.md and the four plots are written."""
    _, out = quick_results
    results = json.loads((out / "results.json").read_text(), parse_constant=pytest.fail)
    assert {"machine", "corpus", "memory_ops", "env_steps", "trainer", "targets", "growth"} <= set(results)
    for name in ("ops_by_size.png", "overhead_ratio.png", "step_cost.png", "growth.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "report.md").read_text()
    for heading in ("## Targets", "## Memory operations", "## Recall", "## Environment cost", "## gym.make_vec"):
        assert heading in text
    assert str(REPO) not in (out / "results.json").read_text()  # no paths of this machine in what gets committed


def test_machine_description_names_versions_and_load(quick_results: tuple[dict, Path]) -> None:
    """The results say which code ran where, and how loaded the machine was."""
    m = quick_results[0]["machine"]
    assert m["cpu_count"] >= 1 and m["packages"]["hnswlib"] and m["python"]
    assert "commit" in m and "load_average_start" in m and "load_average_end" in quick_results[0]


def test_memory_ops_have_positive_timings_recall_in_range_and_no_errors(quick_results: tuple[dict, Path]) -> None:
    """Every op of every size has positive medians for the API and its baselines, and recall lies in [0, 1]."""
    res = quick_results[0]["memory_ops"]["hash"]
    for size in res["by_size"].values():
        assert set(size["ops"]) == {"RETRIEVE@3", "RETRIEVE@5", "RETRIEVE@10", *report.memory_ops.LTM_OPS} | set(
            report.memory_ops.STM_OPS
        )
        for op, row in size["ops"].items():
            assert row["errors"] == 0, op
            for series in ("api", "raw", "exact", "embed", "api_excl_embed"):
                if series in row and series != "api_excl_embed":
                    assert _positive(row[series]["median_us"]) and row[series]["p99_us"] >= row[series]["median_us"]
                    assert _positive(row[series]["ops_per_s"])
            assert _positive(row["ratio_api_raw"])
        for k, value in {**size["recall"]["store"], **size["recall"]["raw"], **size["recall"]["raw_by_ef"]}.items():
            assert 0.0 <= value <= 1.0, k
        for kind in ("search", "add"):
            assert all(_positive(size["batched"][kind][s]["median_us"]) for s in ("store_batch", "raw_loop"))
        fp = size["footprint"]
        assert fp["vector_matrix_bytes_per_item"] >= fp["raw_vector_bytes_per_item"] > 0
        assert _positive(fp["store_bytes_per_item"]) and _positive(fp["snapshot_bytes_per_item"])
        assert size["rebuilds_during_timing"] == 0


def test_env_steps_cover_every_cell_and_variant(quick_results: tuple[dict, Path]) -> None:
    """Each (size, context) cell has steps with positive timings; each make_vec variant made transitions."""
    env = quick_results[0]["env_steps"]
    for cell in env["single"]["cells"]:
        assert cell["steps"] > 0 and cell["episodes"] >= 1
        assert _positive(cell["step"]["median_us"]) and cell["step_excl_embed"]["median_us"] is not None
        assert cell["context_tokens_mean"] > 0 and cell["by_kind"]
    assert {v["variant"] for v in env["vec"]["variants"]} == {"single", "syncx2", "asyncx2"}
    assert all(v["transitions"] > 0 and _positive(v["steps_per_s"]) for v in env["vec"]["variants"])
    assert env["single"]["profile"]["tree"] and env["single"]["profile"]["top"]


def test_trainer_throughput_and_targets(quick_results: tuple[dict, Path]) -> None:
    """The tiny model's tokens/s and its baselines are positive; every target has a verdict."""
    (tiny,) = quick_results[0]["trainer"]["models"]
    assert _positive(tiny["rollout_tokens_per_s"]) and _positive(tiny["learn_tokens_per_s"])
    assert all(_positive(v) for v in tiny["baselines"].values())
    targets = quick_results[0]["targets"]
    assert targets and all(isinstance(t["met"], bool) for t in targets)


def test_render_only_rerenders_from_results_json(quick_results: tuple[dict, Path], tmp_path: Path) -> None:
    """--render-only rebuilds report.md from a results.json without measuring."""
    _, out = quick_results
    report.main(report.Args(render_only=out / "results.json", out_dir=tmp_path, plots=False, quiet=True))
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
