"""The transcript page and the conversation's files: rendered on the server, escaped, guarded."""

from __future__ import annotations

import re
from pathlib import Path

from transcripts_support import World, speak, to_webm, words_at, world_fixture  # noqa: F401

from junto.enums import RecordingState, Role, Visibility
from junto.storage.tables import ConversationMedia

HOSTILE = "<script>alert(1)</script>"


async def test_the_page_lists_segments_and_escapes_what_people_wrote(world: World) -> None:
    ana = await world.member("ana", "Ana")
    mallory = await world.member("mallory", f"Mal {HOSTILE}")
    conv = await world.ended_conversation(ana)
    await world.add_participant(conv, mallory, Role.SPEAKER)
    await world.add_piece(conv, ana, 0.0, words_at(0.0, "Welcome to the stage."))
    await world.add_piece(conv, mallory, 83.0, words_at(0.0, "Thank you."))
    await world.run_jobs("transcript.build")
    patched = await ana.patch(
        f"/api/conversations/{conv.slug}/transcript/segments/1", {"text": f"Thanks {HOSTILE}"}
    )
    assert patched.status_code == 200

    # Under review (ended, not published): only its hosts and speakers read it.
    assert (await world.anonymous().client.get(f"/c/{conv.slug}/transcript")).status_code == 404
    assert (await ana.post(f"/api/conversations/{conv.slug}/publish")).status_code == 200
    for viewer in (world.anonymous(), ana):
        page = await viewer.client.get(f"/c/{conv.slug}/transcript")
        assert page.status_code == 200
        html = page.text
        assert "<script>alert" not in html
        assert "Mal &lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "Thanks &lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "Welcome to the stage." in html
        assert ">00:01:23</a>" in html  # Mallory's turn, 83 s in
        assert f'href="/c/{conv.slug}/transcript.vtt"' in html
        assert "content-security-policy" in page.headers
    anonymous_html = (await world.anonymous().client.get(f"/c/{conv.slug}/transcript")).text
    assert "edit-button" not in anonymous_html and "segment-history" not in anonymous_html
    host_html = (await ana.client.get(f"/c/{conv.slug}/transcript")).text
    assert host_html.count('class="button secondary small edit-button"') == 2
    # The host sees the history of the corrected segment, escaped too.
    assert "<del>Thank you.</del>" in host_html
    assert "<ins>Thanks &lt;script&gt;alert(1)&lt;/script&gt;</ins>" in host_html
    # The page's data for the script is JSON inside a non-executable block, escaped for HTML.
    data = re.search(
        r'<script type="application/json" id="transcript-data">(.*?)</script>', host_html
    )
    assert data is not None and "<script" not in data.group(1)


async def test_before_and_while_the_transcript_is_made(world: World) -> None:
    ana = await world.member("ana", "Ana")
    created = await ana.post("/api/conversations", {"title": "Soon"})
    slug = created.json()["slug"]
    html = (await ana.client.get(f"/c/{slug}/transcript")).text
    assert "The transcript is made after the conversation ends." in html
    await ana.post(f"/api/conversations/{slug}/start")
    await ana.post(f"/api/conversations/{slug}/end")  # queues transcript.build
    html = (await ana.client.get(f"/c/{slug}/transcript")).text
    assert "The transcript is being made." in html
    assert (await ana.client.get(f"/c/{slug}/transcript.vtt")).status_code == 404
    assert (await ana.client.get("/c/nosuchslug/transcript")).status_code == 404


async def test_media_and_recordings_are_served_with_ranges_and_guarded(
    world: World, tmp_path: Path
) -> None:
    ana = await world.member("ana", "Ana")
    conv = await world.ended_conversation(ana, visibility=Visibility.INVITE_ONLY.value)
    data_dir = world.settings.data_dir
    webm = to_webm(speak(tmp_path / "hi.wav", "Hello there."), data_dir / "recordings" / "a.webm")
    rec = await world.add_piece(
        conv, ana, 0.0, words_at(0.0, "Hello there."), path="recordings/a.webm"
    )
    assert await world.run_jobs("transcript.build") == 1
    unfinished = await world.add_piece(conv, ana, 5.0, None, state=RecordingState.FINALIZING)
    composite = data_dir / "recordings" / "composite.mp4"
    composite.write_bytes(b"\x00" * 5000)
    async with world.node.db() as db:
        db.add(
            ConversationMedia(
                conversation_id=conv.id,
                kind="composite",
                path="recordings/composite.mp4",
                mime="video/mp4",
                duration_s=1.0,
                bytes=5000,
            )
        )
        db.add(
            ConversationMedia(
                conversation_id=conv.id,
                kind="audio",
                path="../outside.m4a",
                mime="audio/mp4",
                duration_s=1.0,
                bytes=10,
            )
        )
        await db.commit()
    (data_dir.parent / "outside.m4a").write_bytes(b"secret")

    whole = await ana.client.get(f"/c/{conv.slug}/recordings/{rec}.webm")
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/webm"
    assert whole.content == webm.read_bytes()
    part = await ana.client.get(
        f"/c/{conv.slug}/recordings/{rec}.webm", headers={"Range": "bytes=0-99"}
    )
    assert part.status_code == 206 and len(part.content) == 100
    assert part.content == webm.read_bytes()[:100]
    video = await ana.client.get(f"/c/{conv.slug}/media/composite", headers={"Range": "bytes=10-"})
    assert video.status_code == 206 and video.headers["content-type"] == "video/mp4"
    assert len(video.content) == 4990

    refused = [
        f"/c/{conv.slug}/media/audio",  # a stored path outside the data dir
        f"/c/{conv.slug}/media/other",
        f"/c/{conv.slug}/recordings/{unfinished}.webm",  # not finalized
        f"/c/{conv.slug}/recordings/999999.webm",
    ]
    for path in refused:
        assert (await ana.client.get(path)).status_code == 404, path
    # Invite-only: outsiders get nothing, as if it did not exist.
    stranger = await world.member("carol", "Carol")
    for who in (stranger, world.anonymous()):
        for path in (
            f"/c/{conv.slug}/media/composite",
            f"/c/{conv.slug}/recordings/{rec}.webm",
            f"/c/{conv.slug}/transcript",
        ):
            assert (await who.client.get(path)).status_code == 404, path

    # On a public, published conversation the audience gets the composite, not a speaker's
    # own recording: that is for the hosts and for the speaker it recorded.
    ben = await world.member("ben", "Ben")
    public = await world.ended_conversation(ana, visibility=Visibility.PUBLIC.value)
    await world.add_participant(public, ben, Role.SPEAKER)
    webm_b = to_webm(speak(tmp_path / "b.wav", "Hi."), data_dir / "recordings" / "b.webm")
    bens = await world.add_piece(public, ben, 0.0, words_at(0.0, "Hi."), path="recordings/b.webm")
    assert await world.run_jobs("transcript.build") == 1
    assert (await ana.post(f"/api/conversations/{public.slug}/publish")).status_code == 200
    own = f"/c/{public.slug}/recordings/{bens}.webm"
    for who, status in ((ben, 200), (ana, 200), (stranger, 404), (world.anonymous(), 404)):
        answer = await who.client.get(own)
        assert answer.status_code == status, (who, answer.text)
        assert status == 404 or answer.content == webm_b.read_bytes()

    # The page offers the player and the downloads.
    html = (await ana.client.get(f"/c/{conv.slug}/transcript")).text
    assert '<video id="transcript-player"' in html
    assert f'href="/c/{conv.slug}/media/composite#t=0.0"' in html
    assert f'href="/c/{conv.slug}/recordings/{rec}.webm"' in html
    assert "Ana&#39;s recording" in html


async def test_hosts_can_correct_without_javascript(world: World) -> None:
    ana = await world.member("ana", "Ana")
    ben = await world.member("ben", "Ben")
    conv = await world.ended_conversation(ana)
    await world.add_participant(conv, ben, Role.SPEAKER)
    await world.add_piece(conv, ana, 0.0, words_at(0.0, "Welcome to the stage."))
    await world.run_jobs("transcript.build")
    path = f"/c/{conv.slug}/transcript/segments/0/edit"

    form = await ana.client.get(path)
    assert form.status_code == 200
    assert ">Welcome to the stage.</textarea>" in form.text
    assert f'<option value="{ben.id}">Ben</option>' in form.text
    token = ana.client.cookies["junto_csrf"]

    bad = await ana.client.post(
        path, data={"text": "  ", "speaker_id": str(ana.id), "csrf_token": token}
    )
    assert bad.status_code == 422 and "must not be empty" in bad.text
    saved = await ana.client.post(
        path, data={"text": "Welcome, friends.", "speaker_id": str(ben.id), "csrf_token": token}
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/c/{conv.slug}/transcript#seg-0"
    body = (await ana.client.get(f"/api/conversations/{conv.slug}/transcript")).json()
    assert body["segments"][0]["text"] == "Welcome, friends."
    assert body["segments"][0]["speaker"]["name"] == "Ben"

    # Without the token the form is refused; others are turned away.
    forged = await ana.client.post(path, data={"text": "Forged."})
    assert forged.status_code == 403
    assert (await ben.client.get(path)).status_code == 403
    anonymous = await world.anonymous().client.get(path)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin")
    missing = await ana.client.get(f"/c/{conv.slug}/transcript/segments/9/edit")
    assert missing.status_code == 404
