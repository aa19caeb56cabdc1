"""Plain-text rules (junto.room.text) and client frame validation (junto.room.protocol)."""

from __future__ import annotations

import pytest

from junto.room.protocol import (
    ActionError,
    ChatSend,
    RoomSettings,
    ack_frame,
    error_frame_for,
    parse_client_frame,
    ref_of,
)
from junto.room.text import clean_text, extract, normalise_tag


def test_hashtags_are_lower_cased_unique_and_need_a_boundary() -> None:
    found = extract("#Cities breathe #trees, #TREES and #open-data; C# is not one, nor a#b.")
    assert found.hashtags == ["cities", "trees", "open-data"]
    assert extract("#" + "x" * 40).hashtags == ["x" * 40]
    assert extract("#" + "x" * 41).hashtags == []  # too long: not a tag, not a truncated one
    assert extract("#Ünïcode").hashtags == ["ünïcode"]


def test_mentions_are_usernames_not_email_addresses() -> None:
    found = extract("Thanks @Ana_B and @bob. Mail ana@example.org")
    assert found.mentions == ["ana_b", "bob"]


def test_links_are_http_only_and_lose_trailing_punctuation() -> None:
    text = (
        "See https://example.org/a?b=1#frag. Or (http://x.test/wiki/Foo_(bar)). "
        "Never javascript:alert(1) or data:text/html,hi or ftp://x.test"
    )
    found = extract(text)
    assert found.links == ["https://example.org/a?b=1#frag", "http://x.test/wiki/Foo_(bar)"]
    # A link's #fragment is part of the link, not a hashtag.
    assert found.hashtags == []


def test_clean_text_keeps_newlines_and_drops_controls() -> None:
    assert clean_text("  a\x00b\r\nc\td\x1b\x7f\x85 \ud800e  ") == "ab\nc d e"
    assert clean_text("e\u0301") == "\u00e9"  # NFC
    assert clean_text("<script>alert(1)</script>") == "<script>alert(1)</script>"


def test_tag_filters_are_normalised() -> None:
    assert normalise_tag("#UrbanHeat") == "urbanheat"
    assert normalise_tag("two words") is None
    assert normalise_tag("#") is None


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"type": "chat.send"}, "body"),
        ({"type": "chat.send", "body": 5}, "body"),
        ({"type": "chat.send", "body": ""}, "body"),
        ({"type": "chat.edit", "message_id": "1", "body": "x"}, "message_id"),
        ({"type": "chat.delete", "message_id": 2**31}, "message_id"),
        ({"type": "backchannel.react", "post_id": 1, "kind": "meh", "on": True}, "kind"),
        ({"type": "backchannel.react", "post_id": 1, "kind": "love", "on": 1}, "on"),
        ({"type": "room.settings", "slow_mode_seconds": 601}, "slow_mode_seconds"),
        ({"type": "room.settings"}, "slow_mode_seconds"),
        ({"type": "role.set", "user_id": 1, "role": "host"}, "role"),
        ({"type": "chat.send", "body": "x", "sneaky": 1}, "sneaky"),
        ({"type": "chat.send", "body": "x", "ref": "r" * 65}, "ref"),
        ({"type": "nope"}, "nope"),
        ({"body": "no type"}, "type"),
    ],
)
def test_bad_frames_are_bad_message_naming_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ActionError) as caught:
        parse_client_frame(raw)
    assert caught.value.code == "bad_message"
    assert field in caught.value.message


def test_frames_must_be_objects() -> None:
    with pytest.raises(ActionError, match="expected a JSON object, got an array"):
        parse_client_frame([1, 2])


def test_good_frames_parse_to_models() -> None:
    frame = parse_client_frame({"type": "chat.send", "body": "hi", "ref": "r1"})
    assert isinstance(frame, ChatSend) and frame.body == "hi" and frame.ref == "r1"
    settings = parse_client_frame({"type": "room.settings", "stage_locked": True})
    assert isinstance(settings, RoomSettings) and settings.slow_mode_seconds is None


def test_control_frames() -> None:
    assert ref_of({"type": "x", "ref": "abc"}) == "abc"
    assert ref_of({"ref": 5}) is None and ref_of("x") is None
    assert ack_frame("abc", 7) == {"type": "ack", "ref": "abc", "id": 7}
    error = ActionError("slow_mode", "wait", retry_after=2.345)
    assert error_frame_for(error, "abc") == {
        "type": "error",
        "code": "slow_mode",
        "message": "wait",
        "ref": "abc",
        "retry_after": 2.3,
    }
    with pytest.raises(ValueError):
        ActionError("no_such_code", "x")
