"""bench/snippets.py runs end to end in its quick mode and ends with its JSON line (the figures
themselves are measured by running the benchmark, bench/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "snippets.py"


def test_quick_snippet_benchmark_prints_its_json_line() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    last = json.loads(done.stdout.strip().splitlines()[-1])
    assert last["bench"] == "snippets"
    for length in ("10s", "30s"):
        figures = last["results"][length]
        assert figures["create_median_s"] > 0 and figures["baseline_copy_median_s"] > 0
