"""The one cursor codec every list endpoint uses: round trips, and refuses what it never gave out."""

import base64

import pytest

from shared.cursors import BadCursor, decode_cursor, encode_cursor


@pytest.mark.parametrize("value", [0, 17, "image-id", ["2026-11-26T09:00:00+00:00", "r-1"], {"original": "ab" * 32}])
def test_a_cursor_decodes_to_the_value_it_was_made_from(value):
    cursor = encode_cursor(value)
    assert "=" not in cursor and decode_cursor(cursor) == value


def test_a_padded_cursor_from_an_older_release_still_decodes():
    padded = base64.urlsafe_b64encode(b'"label-77"').decode()
    assert padded.endswith("=") and decode_cursor(padded) == "label-77"


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(b"\xff\xfe not utf-8").decode(),
        base64.urlsafe_b64encode(b"{not json").decode(),
        base64.urlsafe_b64encode(b"[" * 100_000).decode(),  # deep enough to exhaust the parser's recursion
        "A" * 100_000,
    ],
    ids=["not-base64", "not-utf8", "not-json", "nested", "too-long"],
)
def test_anything_else_is_a_bad_cursor(cursor):
    with pytest.raises(BadCursor):
        decode_cursor(cursor)


def test_an_endpoint_can_ask_for_a_shorter_cursor():
    with pytest.raises(BadCursor, match="590 characters"):
        decode_cursor(encode_cursor("x" * 440), max_chars=512)
