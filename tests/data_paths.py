"""Where the tests find the shared HotpotQA sample, and a marker that skips with a clear reason without it."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
HOTPOT_SAMPLE = SHARED / "data" / "hotpotqa" / "hotpot_dev_distractor_sample1000.json.gz"

requires_hotpot = pytest.mark.skipif(
    not HOTPOT_SAMPLE.exists(),
    reason=f"the HotpotQA sample is not at {HOTPOT_SAMPLE} (it lives in ../shared/data/hotpotqa/ beside the checkout)",
)
