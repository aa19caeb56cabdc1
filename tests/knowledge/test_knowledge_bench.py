"""bench/knowledge.py runs end to end, and scores an LLM on the same held-out meetings when one is
configured: here a real OpenAI-compatible HTTP server on 127.0.0.1 whose "model" calls every line
ending with "?" a question and finds nothing else (and answers garbage for one meeting)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "knowledge.py"
LINE = re.compile(r"^\[(?P<time>\d+:\d\d(?::\d\d)?)\] [^:]+: (?P<text>.*)$")

pytestmark = pytest.mark.slow


def _answer(prompt: str, calls: int) -> str:
    if calls == 1:
        return "Sorry, I cannot help with that."  # not JSON: that meeting scores nothing
    asked = [
        {"text": m["text"], "time": m["time"]}
        for m in map(LINE.match, prompt.splitlines())
        if m is not None and m["text"].rstrip().endswith("?")
    ]
    return json.dumps(
        {
            "abstract": "A meeting.",
            "chapters": [],
            "key_points": [],
            "questions": asked,
            "decisions": [],
            "action_items": [],
            "topics": [],
        }
    )


@pytest.fixture(name="llm_url")
def llm_server() -> Iterator[str]:
    calls = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            calls[0] += 1
            prompt = "\n".join(str(m["content"]) for m in body["messages"])
            content = _answer(prompt, calls[0])
            data = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_the_benchmark_scores_the_classifier_the_cues_and_an_llm(llm_url: str) -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH), "--llm"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "JUNTO_LLM_URL": llm_url, "JUNTO_LLM_TIMEOUT": "30"},
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["held_out_sentences"] >= 0.3 * 700
    for key in ("f1_questions", "f1_decisions", "f1_actions", "owner_accuracy"):
        assert 0 <= result[key] <= 1 and 0 <= result.get(f"baseline_{key}", 0) <= 1
    # The question-mark "LLM" finds some questions and no decision; its garbage answer is named.
    assert 0 < result["llm_f1_questions"] < 1 and result["llm_f1_decisions"] == 0
    assert "llm on " in run.stderr and "JSON" in run.stderr
    assert "classifier" in run.stdout and "cues" in run.stdout and "llm" in run.stdout
