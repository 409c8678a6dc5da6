import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelsec.bytesource import (
    WHOLE_FILE_BYTES,
    BytesSource,
    FileSource,
    LimitExceeded,
    SequentialReader,
    SliceSource,
    SpooledSource,
    as_stream,
)


def test_file_source_digest_matches_hashlib_whatever_was_read(tmp_path):
    data = os.urandom(3 * (1 << 20) + 123)
    path = tmp_path / "blob"
    path.write_bytes(data)
    with FileSource(path) as src:
        assert src.read_at(10, 5) == data[10:15]  # a read that does not start the prefix
        assert src.read_at(0, 100) == data[:100]
        assert src.read_at(len(data) - 10, 100) == data[-10:]
        assert src.finish_digest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [0, 1, 5000, WHOLE_FILE_BYTES, WHOLE_FILE_BYTES + 1])
def test_a_small_file_is_read_once_whole_and_served_from_memory(tmp_path, size):
    """Files up to WHOLE_FILE_BYTES are read in one piece at the first read (a torch.save
    zip is otherwise ~80 small reads); every read agrees with the bytes and the digest too."""
    data = os.urandom(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    with FileSource(path) as src:
        for offset, length in (
            (10, 5),
            (0, 100),
            (max(0, size - 10), 100),
            (size, 10),
            (size + 5, 1),
            (3, 0),
        ):
            assert src.read_at(offset, length) == data[offset : offset + length]
        whole = size and size <= WHOLE_FILE_BYTES
        assert src.bytes_read == (size if whole else src.bytes_read)
        if whole:
            os.truncate(path, 0)  # later reads come from the snapshot
            assert src.read_at(0, size) == data
        assert src.finish_digest() == hashlib.sha256(data).hexdigest()


def test_a_small_file_that_shrank_before_its_first_read_fails_its_digest(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 5000)
    with FileSource(path) as src:
        os.truncate(path, 100)
        assert src.read_at(0, 5000) == b"x" * 100
        with pytest.raises(OSError, match="shrank"):
            src.finish_digest()


def test_file_source_progress_counts_every_byte_once(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 5000)
    seen = []
    with FileSource(path, seen.append) as src:
        src.read_at(0, 100)
        src.read_at(50, 100)  # overlaps what was hashed
        src.finish_digest()
    assert sum(seen) == 5000


def test_slice_source_bounds():
    parent = BytesSource(b"0123456789")
    s = SliceSource(parent, 2, 5)
    assert s.read_at(0, 100) == b"23456"
    assert s.read_at(5, 1) == b""
    with pytest.raises(ValueError):
        SliceSource(parent, 8, 5)


def test_spooled_source_refuses_to_grow_past_limit():
    import io

    with pytest.raises(LimitExceeded):
        SpooledSource(io.BytesIO(b"a" * 1000), limit=999)
    with SpooledSource(io.BytesIO(b"abc"), limit=3) as s:
        assert s.read_at(1, 5) == b"bc"


def test_sequential_reader_read_skip_readline():
    src = BytesSource(b"line one\nline two\n" + b"z" * 10_000 + b"end")
    r = SequentialReader(src, chunk=7)
    assert r.readline(100) == b"line one\n"
    assert r.read(4) == b"line"
    assert r.readline(100) == b" two\n"
    r.skip(10_000)
    assert r.offset == 18 + 10_000
    assert r.read(3) == b"end"
    assert r.at_end()
    with pytest.raises(EOFError):
        r.read(1)


def test_sequential_reader_refuses_long_lines():
    r = SequentialReader(BytesSource(b"a" * 5000 + b"\n"), chunk=64)
    with pytest.raises(LimitExceeded):
        r.readline(100)


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=3000), st.lists(st.tuples(st.sampled_from("rsp"), st.integers(0, 700)), max_size=30)
)
def test_sequential_reader_agrees_with_slicing(data, ops):
    r = SequentialReader(BytesSource(data), chunk=13)
    pos = 0
    for op, n in ops:
        if op == "p":
            assert r.peek(n) == data[pos : pos + n]
            continue
        if pos + n > len(data):
            with pytest.raises(EOFError):
                r.read(n) if op == "r" else r.skip(n)
            return
        if op == "r":
            assert r.read(n) == data[pos : pos + n]
        else:
            r.skip(n)
        pos += n
        assert r.offset == pos


def test_stream_view_is_seekable():
    stream = as_stream(BytesSource(b"hello world"))
    stream.seek(6)
    assert stream.read() == b"world"
