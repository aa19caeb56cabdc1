"""The search benchmark runs end to end at a tiny size (issue 5, `bench/search.py`).

It proves the script builds an archive through the real migrations, triggers and passage code,
builds the vector index, runs the hybrid queries and the bare FTS5 baseline, and ends with the
JSON line. Timing targets are measured by running the benchmark itself (bench/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "search.py"


def test_search_benchmark_prints_its_figures(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH), "--hours", "2", "--pool", "300", "--rounds", "1",
         "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for key in ("hours", "segments", "index_build_s", "p50_ms", "p95_ms", "baseline_fts_p95_ms"):
        assert key in result, key
    assert result["hours"] == 2
    # Two hours at 150 words a minute: a few hundred turns, a few hundred passages.
    assert 200 < result["segments"] < 1000 and 300 < result["passages"] < 2000
    run_ = result["runs"][0]
    assert run_["answered"] > run_["queries"] // 2  # most queries found something
    assert 0 < result["p50_ms"] <= result["p95_ms"]
    assert "hybrid search p50" in run.stdout and "baseline bare FTS5" in run.stdout
