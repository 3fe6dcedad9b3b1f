"""The README's environment quick start runs and prints exactly the output the README shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_env_quick_start_prints_what_the_readme_shows(tmp_path: Path) -> None:
    """The first code block of the env quick start, run as a script, prints the block that follows it."""
    match = re.search(r"```python\n(.*?)```\n\n```\n(.*?)```", _section("Quick start: the environment"), re.S)
    assert match, "the env quick start must be a python block followed by its output block"
    script = tmp_path / "quick_start.py"
    script.write_text(match.group(1), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == match.group(2)
