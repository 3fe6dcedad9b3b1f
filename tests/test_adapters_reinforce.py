"""Tests of the REINFORCE example: it runs on the vector env, is deterministic, and improves R(τ)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from examples.reinforce import main, render, state_index


def test_reinforce_learns_and_is_deterministic() -> None:
    """A few iterations raise the mean R(τ), and the same seed gives the same curve."""
    curve = main(iterations=12, num_envs=4, seed=0)
    assert len(curve) == 12 and all(np.isfinite(curve))
    assert np.mean(curve[-3:]) > np.mean(curve[:3])
    assert main(iterations=3, num_envs=4, seed=0) == curve[:3]


def test_macros_render_protocol_text() -> None:
    """Each macro renders to a parseable turn, and the state index covers six rows."""
    from agemem_gym.protocol import parse_action

    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "Hi about X.\nX opened in 1841."}]
    for macro in range(4):
        assert parse_action(render(macro, 1, messages)).ok
    assert state_index(1, messages) == 1 and state_index(3, [{"role": "tool", "content": ""}]) == 4


def test_runs_as_a_module() -> None:
    """python -m examples.reinforce is importable as a module with a __main__ block."""
    out = subprocess.run(
        [sys.executable, "-c", "import runpy; runpy.run_module('examples.reinforce')"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout == ""
