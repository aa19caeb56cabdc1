"""The LLM backend against a real OpenAI-compatible HTTP server on 127.0.0.1.

The server is a small honest implementation of /v1/chat/completions that answers what each test
sets: a valid reply, garbage, JSON of the wrong shape, an HTTP error, or nothing in time. In every
failure the offline knowledge stands and the error says why.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from knowledge_support import job_context, talk
from transcripts_support import World, world_fixture  # noqa: F401 - fixture

from junto.enums import JobState
from junto.knowledge import store
from junto.knowledge.jobs import extract
from junto.knowledge.llm import MAX_PROMPT_CHARS, prompt
from junto.knowledge.sentences import Sentence

VALID = {
    "abstract": "Ana and Ben discuss how rivers shaped cities and how to fund a new library.",
    "chapters": [
        {"title": "Rivers and cities", "time": "00:00", "summary": "Trade and swimming."},
        {"title": "Paying for the library", "time": "01:04", "summary": "A state grant."},
    ],
    "key_points": [{"text": "Clean rivers brought fish back.", "time": "00:52"}],
    "questions": [{"text": "How will the city pay for the library?", "time": "01:04"}],
    "decisions": [{"text": "Ask the state for a grant.", "time": "01:27"}],
    "action_items": [
        {"text": "Write the grant letter.", "time": "01:27", "owner": "Ben"},
        {"text": "Find reading volunteers.", "time": "02:01", "owner": None},
    ],
    "topics": ["rivers", "urban waterfronts", "library funding"],
}


class Llm:
    """What the fake-free local server answers next: (status, body, delay_s)."""

    def __init__(self) -> None:
        self.status = 200
        self.content: str = json.dumps(VALID)
        self.raw: bytes | None = None
        self.delay_s = 0.0
        self.requests: list[dict[str, Any]] = []


@pytest.fixture(name="llm")
def llm_server() -> Iterator[tuple[str, Llm]]:
    state = Llm()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.requests.append(
                {
                    "path": self.path,
                    "auth": self.headers.get("Authorization"),
                    "body": json.loads(self.rfile.read(length)),
                }
            )
            time.sleep(state.delay_s)
            body = state.raw
            if body is None:
                body = json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": state.content}}]}
                ).encode()
            try:
                self.send_response(state.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", state
    finally:
        server.shutdown()
        server.server_close()


async def _extract(world: World, conversation_id: int, url: str, timeout: float = 5.0) -> None:
    settings = replace(
        world.settings,
        llm_url=url,
        llm_model="test-model",
        llm_api_key="sk-test-secret",
        llm_timeout_s=timeout,
    )
    await extract(job_context(world, conversation_id, settings))


async def test_a_valid_llm_reply_is_used_with_times_and_owners(
    world: World, llm: tuple[str, Llm]
) -> None:
    url, server = llm
    ana = await world.member("ana", "Ana Host")
    ben = await world.member("ben", "Ben Speaker")
    conv = await talk(world, ana, ben)
    await _extract(world, conv.id, url)

    request = server.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test-secret"
    assert request["body"]["response_format"]["type"] == "json_schema"
    # A schema that strict structured outputs accept: every field required, no others allowed.
    schema = request["body"]["response_format"]["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(VALID)
    assert schema["$defs"]["_Action"]["required"] == ["text", "time", "owner"]
    assert "[00:00] Ana Host: Welcome to the stage." in request["body"]["messages"][1]["content"]
    async with world.node.db() as db:
        k = await store.load(db, conv.id)
        row = await store.row(db, conv.id)
    assert k is not None and row is not None
    assert (row.backend, row.error) == ("llm", None)
    assert k.abstract == VALID["abstract"]
    assert [c.title for c in k.chapters] == ["Rivers and cities", "Paying for the library"]
    # Times point at the sentence said then; owners are matched to participants.
    assert k.chapters[1].start_ms == 64_800
    letter = k.action_items[0]
    assert letter.owner_id == ben.id and letter.owner == "Ben Speaker"
    assert k.action_items[1].owner_id is None
    # The offline summary sentences are kept beside the abstract; topics keep the LLM's order.
    assert k.summary
    assert [t.label for t in k.topics] == VALID["topics"]
    assert [t.score for t in k.topics] == sorted((t.score for t in k.topics), reverse=True)


def test_a_long_transcript_is_shortened_to_whole_lines_from_all_of_it() -> None:
    sentences = [
        Sentence(f"Line {i} is about the river and the old mill.", i * 5000, i * 5000 + 4000, 1, i)
        for i in range(2000)  # two hours and three quarters
    ]
    text = prompt(sentences, {1: "Ana Host"})
    assert 0.9 * MAX_PROMPT_CHARS <= len(text) <= MAX_PROMPT_CHARS
    lines = text.splitlines()
    assert lines[0] == "[00:00] Ana Host: Line 0 is about the river and the old mill."
    assert lines[-1] == "[2:46:35] Ana Host: Line 1999 is about the river and the old mill."
    said = [line for line in lines if line != "[...]"]
    assert all(
        re.fullmatch(r"\[[\d:]+\] Ana Host: Line \d+ is about the river and the old mill\.", line)
        for line in said
    )
    # Passages from every quarter of an hour are kept, not just the beginning and the end.
    numbers = [int(line.split("Line ")[1].split()[0]) for line in said]
    assert {n * 5 // 900 for n in numbers} == set(range(12))
    assert numbers == sorted(numbers)


FAILURES = [
    ("garbage", "not the JSON"),
    ("wrong_schema", "does not match the schema"),
    ("http_500", "HTTP 500"),
    ("timeout", "did not answer within"),
    ("time_after_end", "after the conversation's end"),
    ("unreachable", "cannot reach the LLM"),
]


async def test_a_failing_llm_leaves_the_offline_knowledge(
    world: World, llm: tuple[str, Llm]
) -> None:
    server_url, server = llm
    ana = await world.member("ana", "Ana Host")
    ben = await world.member("ben", "Ben Speaker")
    conv = await talk(world, ana, ben)
    assert await world.run_jobs("knowledge.extract") == 1  # offline, no LLM configured
    async with world.node.db() as db:
        before = await store.load(db, conv.id)
    assert before is not None and before.backend == "offline"

    # One failure after another on the same conversation: each one is explained, and none
    # loses what was learnt offline.
    for case, expected in FAILURES:
        server.status, server.content, server.raw, server.delay_s = 200, json.dumps(VALID), None, 0
        url, timeout = server_url, 5.0
        if case == "garbage":
            server.raw = b"<html>502 Bad Gateway</html>"
        elif case == "wrong_schema":
            server.content = json.dumps({"summary": "a different shape", "chapters": "none"})
        elif case == "http_500":
            server.status = 500
        elif case == "timeout":
            server.delay_s, timeout = 2.0, 0.5
        elif case == "time_after_end":
            server.content = json.dumps({**VALID, "decisions": [{"text": "x", "time": "59:00"}]})
        elif case == "unreachable":
            url = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
        await _extract(world, conv.id, url, timeout)

        async with world.node.db() as db:
            after = await store.load(db, conv.id)
            row = await store.row(db, conv.id)
        assert after is not None and row is not None, case
        assert row.backend == "offline" and after.abstract is None, case
        assert row.error is not None and expected in row.error, (case, row.error)
        assert "sk-test-secret" not in row.error and "127.0.0.1" not in row.error, case
        assert after.summary == before.summary and after.chapters == before.chapters, case
        assert after.decisions == before.decisions, case
    (job,) = await world.jobs("knowledge.extract")
    assert job.state == JobState.SUCCEEDED

    # The server answers well again: its abstract replaces the error.
    server.status, server.content, server.raw, server.delay_s = 200, json.dumps(VALID), None, 0
    await _extract(world, conv.id, server_url)
    async with world.node.db() as db:
        row = await store.row(db, conv.id)
    assert row is not None and (row.backend, row.error) == ("llm", None)
