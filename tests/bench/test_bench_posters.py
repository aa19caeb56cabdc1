"""`realtime_fanout.py --posters` runs end to end on a tiny load (issue 12).

Guests post over REST and over their sockets while the host's posts are timed; the JSON line
says how many posters there were, how many of their posts the node took, and how many failed
with a server error. Timing targets are measured by running the benchmark itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "realtime_fanout.py"

pytestmark = pytest.mark.slow


def test_posters_post_over_rest_and_websocket_while_posts_are_timed() -> None:
    argv = [sys.executable, str(BENCH), "--clients", "10", "--posts", "6", "--interval", "0.3"]
    argv += ["--client-procs", "1", "--connect-timeout", "60", "--posters", "0.4"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=110)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["posters"] == 4
    # The other six watch, on both targets, and every timed post reached them.
    assert result["node_connected"] == 6 and result["baseline_connected"] == 6
    assert result["node_incomplete_posts"] == 0
    assert result["errors_5xx"] == 0
    assert result["poster_posts_accepted"] >= 4, result
    assert result["poster_posts_refused"] == {}
    assert isinstance(result["poster_answer_p99_ms"], float)
    assert result["targets"]["posters_no_5xx"] is True
