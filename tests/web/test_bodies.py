"""The UTF-8 check of request bodies: chunk by chunk, the same verdict and offset as decoding
the whole body at once (invalid UTF-8 is answered `invalid JSON body: invalid UTF-8 at byte N`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audience.web import bodies


def _whole(data: bytes) -> int | None:
    try:
        data.decode()
    except UnicodeDecodeError as exc:
        return exc.start
    return None


# Text with characters of every UTF-8 length, with stray bytes sometimes spliced in.
_text = st.text(alphabet=st.sampled_from("aé\u0142\u20ac\U0001f600"), max_size=40)
_bodies = st.one_of(
    _text.map(str.encode),
    st.tuples(_text, st.binary(min_size=1, max_size=3), _text).map(
        lambda p: p[0].encode() + p[1] + p[2].encode()
    ),
    st.binary(max_size=40),
)


@given(data=_bodies, chunk=st.integers(min_value=1, max_value=9))
def test_chunked_check_agrees_with_decoding_the_whole_body(data: bytes, chunk: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bodies, "UTF8_CHUNK", chunk)
        assert bodies.invalid_utf8_at(data) == _whole(data)


def test_a_character_cut_by_the_end_of_the_body_is_invalid_where_it_begins() -> None:
    data = b"x" * (bodies.UTF8_CHUNK + 3) + "\u20ac".encode()[:2]
    assert bodies.invalid_utf8_at(data) == bodies.UTF8_CHUNK + 3


def test_a_bad_byte_after_the_first_chunk_is_named_by_its_offset_in_the_body() -> None:
    data = "é".encode() * bodies.UTF8_CHUNK + b"\xff"
    assert bodies.invalid_utf8_at(data) == 2 * bodies.UTF8_CHUNK
