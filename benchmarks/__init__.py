"""Performance benchmarks of AgeMem-Gym (issue 7): not collected by the default test run.

- :mod:`benchmarks.report` runs everything and writes ``benchmarks/results/`` (``python -m benchmarks.report``):
  ``results.jsonl`` (flat :class:`~benchmarks.records.Record` s, one per configuration), ``report.md`` and PNGs;
- the measuring modules return records: :mod:`~benchmarks.memory_ops` (the six tools through the tool API against
  raw hnswlib, exact numpy search and the embedder alone), :mod:`~benchmarks.env_steps` (env cost per step, single
  and vectorised), :mod:`~benchmarks.footprint` (memory per item), :mod:`~benchmarks.trainer_perf` (GRPO tokens/s),
  :mod:`~benchmarks.profiles` (cProfile call trees), :mod:`~benchmarks.serve` (agemem-serve);
- records are rendered by :mod:`~benchmarks.render` (generic tables) over :mod:`~benchmarks.layout` (the report's
  sections), with :mod:`~benchmarks.derived` (targets, growth) and :mod:`~benchmarks.plots` (the PNGs);
- shared pieces: :mod:`~benchmarks.timing` (interleaving, statistics), :mod:`~benchmarks.machine` (the machine's
  description), :mod:`~benchmarks.corpus` (texts, the instrumented embedder, the vector cache);
- ``bench_*.py`` are pytest-benchmark suites over the same measuring code (settings in :mod:`~benchmarks.suite`).

Benchmarks never assert timings: they report medians and ratios against a baseline measured in the same run.
"""
