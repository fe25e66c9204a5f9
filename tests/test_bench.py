"""The benchmarks stay runnable: each one imports what it measures and parses its arguments.

A benchmark is run by hand on a quiet machine (README, Benchmarks), so nothing else notices when a
refactoring moves a module it imports; this does, in a second or two per benchmark.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
BENCHMARKS = sorted(p for p in BENCH.glob("*.py") if p.name != "common.py")


def test_every_benchmark_is_checked() -> None:
    assert {p.stem for p in BENCHMARKS} >= {"ingest", "screening", "audit", "match", "purge", "breach", "load"}


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_starts(script: Path) -> None:
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower()
