"""Captions going out: WebVTT (escaped, ordered), the two routes and their visibility, and the
`junto models` command."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from helpers import csrf_headers, in_process_node, signup
from junto import cli
from junto.config import Settings
from junto.conversations import get_by_slug
from junto.node import Node
from junto.speech import models, webvtt
from junto.storage.tables import Caption


def test_webvtt_escapes_markup_folds_lines_and_sorts_cues() -> None:
    text = webvtt.render(
        [
            webvtt.Cue(3_723_004, 3_725_000, "Ben", "later"),
            webvtt.Cue(1_500, 1_500, "Ana <b> & Co", "a <i>tag</i> & an arrow -->\n\nnext"),
            webvtt.Cue(0, 900, "Cy", "   "),  # nothing said: no cue
        ]
    )
    assert text == (
        "WEBVTT\n\n"
        "00:00:01.500 --> 00:00:01.501\n"
        "<v Ana &lt;b&gt; &amp; Co>a &lt;i&gt;tag&lt;/i&gt; &amp; an arrow --&gt; next\n\n"
        "01:02:03.004 --> 01:02:05.000\n"
        "<v Ben>later\n\n"
    )


@pytest.fixture
async def node_and_client(settings: Settings) -> AsyncIterator[tuple[Node, httpx.AsyncClient]]:
    async with in_process_node(settings.with_overrides(recording=False, captions=False)) as running:
        yield running


async def test_captions_follow_the_conversations_visibility(
    node_and_client: tuple[Node, httpx.AsyncClient],
) -> None:
    node, client = node_and_client
    me = await signup(client, "host", display_name="Host")
    headers = await csrf_headers(client)
    slugs = {}
    for visibility in ("public", "invite_only"):
        r = await client.post(
            "/api/conversations",
            json={"title": f"A {visibility} talk", "visibility": visibility},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        slugs[visibility] = r.json()["slug"]
        async with node.db() as db:
            conv = await get_by_slug(db, slugs[visibility])
            assert conv is not None
            db.add_all(
                [
                    Caption(
                        conversation_id=conv.id,
                        user_id=me["id"],
                        start_ms=4000,
                        end_ms=5000,
                        text="second",
                    ),
                    Caption(
                        conversation_id=conv.id,
                        user_id=me["id"],
                        start_ms=1000,
                        end_ms=2000,
                        text="first <&>",
                    ),
                ]
            )
            await db.commit()
    for slug in slugs.values():  # the host sees both
        listing = await client.get(f"/api/conversations/{slug}/captions")
        assert [c["text"] for c in listing.json()["captions"]] == ["first <&>", "second"]
        assert listing.json()["captions"][0]["user"]["name"] == "Host"
        vtt = await client.get(f"/c/{slug}/captions.vtt")
        assert "<v Host>first &lt;&amp;&gt;" in vtt.text

    client.cookies.clear()  # now a stranger, not signed in
    assert (await client.get(f"/c/{slugs['public']}/captions.vtt")).status_code == 200
    for url in (
        f"/c/{slugs['invite_only']}/captions.vtt",
        f"/api/conversations/{slugs['invite_only']}/captions",
        "/c/nosuchslug/captions.vtt",
    ):
        r = await client.get(url)
        assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_models_resolve_list_and_pull_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path, caption_model="tiny.en", transcript_model="base.en")
    bundled = models.resolve_model("tiny.en", settings)
    assert (Path(bundled) / "model.bin").is_file()
    assert models.resolve_model(bundled, settings) == bundled  # a folder is itself
    assert models.resolve_model("base.en", settings) == "base.en"  # downloaded on first use
    pulled = settings.effective_models_dir / "base.en"
    pulled.mkdir(parents=True)
    (pulled / "model.bin").write_bytes(b"x")
    assert models.resolve_model("base.en", settings) == str(pulled)  # a previous pull

    listed = {m.name: m for m in models.list_models(settings)}
    assert listed["tiny.en"].present and listed["tiny.en"].used_for == ("captions",)
    assert listed["base.en"].present and listed["base.en"].used_for == ("transcript",)
    assert cli.main(["models", "list", "--data-dir", str(tmp_path)]) == 0
    assert "tiny.en" in capsys.readouterr().out

    # No model hub here (and a name that exists nowhere, for machines that have one): a
    # sentence on stderr and exit status 1, no traceback, nothing left behind.
    missing = "junto-tests/no-such-model"
    assert cli.main(["models", "pull", missing, "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not download") and "Traceback" not in err
    assert not (settings.effective_models_dir / "junto-tests--no-such-model").exists()
    assert cli.main(["models", "pull", "nonsense", "--data-dir", str(tmp_path)]) == 1
    assert "unknown model 'nonsense'" in capsys.readouterr().err
