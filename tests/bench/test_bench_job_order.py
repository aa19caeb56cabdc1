"""The job-order benchmark runs end to end on a tiny conversation (`bench/job_order.py`): one
worker runs the real jobs of an ended conversation, by priority and first in, first out, and
prints the JSON line. Timing targets are never asserted: they are measured by running it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "job_order.py"

pytestmark = pytest.mark.slow


def test_benchmark_times_the_transcript_by_priority_and_first_in_first_out() -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH), "--speakers", "1", "--seconds", "4"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    for key in ("transcript_ready_s", "knowledge_ready_s", "all_done_s"):
        assert result[key] > 0 and result[f"baseline_{key}"] > 0, (key, result)
    # Whatever the timings, the order is what the priorities say: the transcript's jobs first.
    # The timeline under "priorities, in the order they finished", one job a line.
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("priorities, in"))
    order = [line.split()[0] for line in lines[start + 1 :] if line.startswith("    ")]
    assert order.index("transcript.build") < order.index("composite.render"), order
