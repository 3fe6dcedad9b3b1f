"""Performance benchmarks of AgeMem-Gym (issue 7): not collected by the default test run.

- :mod:`benchmarks.report` runs everything and writes ``benchmarks/results/`` (``python -m benchmarks.report``);
- ``bench_*.py`` are pytest-benchmark suites over the same measurements
  (``pytest benchmarks -o python_files='bench_*.py' -p no:cacheprovider --benchmark-only``);
- the other modules hold the measurements: :mod:`~benchmarks.memory_ops` (the six tools through the tool API
  against raw hnswlib, exact numpy search and the embedder alone), :mod:`~benchmarks.env_steps` (env cost per step,
  single and vectorised), :mod:`~benchmarks.footprint` (memory per item), :mod:`~benchmarks.trainer_perf` (GRPO
  tokens/s), :mod:`~benchmarks.profiles` (cProfile call trees), :mod:`~benchmarks.plots` (the PNGs),
  :mod:`~benchmarks.suite` (the pytest-benchmark settings) and :mod:`~benchmarks.common` (corpus, timing, machine
  description).

Benchmarks never assert timings: they print medians and ratios against a baseline measured in the same run.
"""
