"""Absolute links come from the node's settings, never from the request's Host header.

A Host header is whatever the client sends: with links built from it, one request with
`Host: evil.example` could put the attacker's address into a feed, an Open Graph card or an
oEmbed answer that a cache or a feed reader then serves to everyone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from helpers import csrf_headers, in_process_node, signup
from junto.cli import serve_problem
from junto.config import Settings
from junto.enums import ConversationState
from junto.storage.tables import Conversation

EVIL = {"Host": "evil.example"}


def _settings(tmp_path: Path, database_url: str, **changes: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url,
                    secret_key="test-secret", workers=0, **changes)  # type: ignore[arg-type]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "base"),
    [
        ({"public_url": "https://junto.example.org/"}, "https://junto.example.org"),
        ({"host": "127.0.0.1", "port": 8123}, "http://127.0.0.1:8123"),
    ],
    ids=["public-url", "listen-address"],
)
async def test_feeds_og_tags_and_api_links_ignore_the_host_header(
    tmp_path: Path, database_url: str, changes: dict[str, object], base: str
) -> None:
    async with in_process_node(_settings(tmp_path, database_url, **changes)) as (node, client):
        await signup(client, "hosta")
        created = await client.post(
            "/api/conversations", json={"title": "Rivers"}, headers=await csrf_headers(client)
        )
        slug = created.json()["slug"]
        # Published (as the host's Publish button leaves it), so feeds and the page show it.
        async with node.db() as db:
            await db.execute(
                update(Conversation)
                .where(Conversation.slug == slug)
                .values(state=ConversationState.PUBLISHED)
            )
            await db.commit()

        summary = (await client.get(f"/api/conversations/{slug}", headers=EVIL)).json()
        assert summary["url"] == f"{base}/c/{slug}"
        for feed in ("conversations.rss", "conversations.atom", "podcast.rss"):
            body = (await client.get(f"/feeds/{feed}", headers=EVIL)).text
            assert "evil.example" not in body, feed
            assert f"{base}/" in body, feed  # the channel's own link
            if feed != "podcast.rss":  # episodes need an audio file
                assert f"{base}/c/{slug}" in body, feed
        page = await client.get(f"/c/{slug}", headers=EVIL)
        assert page.status_code == 200, page.text
        assert "evil.example" not in page.text
        assert f'<meta property="og:url" content="{base}/c/{slug}">' in page.text


def _serve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "junto", "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_serve_refuses_a_public_address_without_a_public_url(tmp_path: Path, host: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNTO_")}
    done = _serve("--host", host, "--port", "1", "--data-dir", str(tmp_path), env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "JUNTO_PUBLIC_URL" in done.stderr and host in done.stderr
    assert not (tmp_path / "junto.sqlite3").exists()  # refused before anything was touched


@pytest.mark.parametrize(
    ("changes", "refused"),
    [
        ({"host": "127.0.0.1"}, False),
        ({"host": "::1"}, False),
        ({"host": "localhost"}, False),
        ({"host": "0.0.0.0", "public_url": "https://junto.example.org"}, False),
        ({"host": "junto.example.org"}, True),  # a name may resolve to a public address
        ({"host": "0.0.0.0", "public_url": "junto.example.org"}, True),  # no scheme
    ],
)
def test_which_settings_serve_accepts(changes: dict[str, object], refused: bool) -> None:
    settings = Settings(data_dir=Path("/nonexistent"), **changes)  # type: ignore[arg-type]
    assert (serve_problem(settings) is not None) is refused
