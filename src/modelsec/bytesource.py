"""Random-access byte sources with bounded memory.

Format scanners never get a file object they could hand to a framework loader; they get a
:class:`ByteSource`: a size and ``read_at(offset, n)``. Local files use ``os.pread``; archive
members are slices of their parent or spooled temporary files; remote sources (later) map
``read_at`` to HTTP range requests. A scanner that walks a source front to back should use
:class:`SequentialReader`, which reads in chunks and never holds more than one chunk.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough for a bounded footprint
WHOLE_FILE_BYTES = 1 << 20  # files up to this size are read in one piece (FileSource)
HASH_CHUNK = 8 << 20  # the hashing-only pass: fewer, larger reads into one reused buffer


class LimitExceeded(Exception):
    """A size/count/ratio limit was reached; the message says which and where."""


class NotRegularFile(OSError):
    """A path that is not a regular file (FIFO, device, socket, directory). Reading one
    would block forever (a FIFO with no writer), never end (``/dev/zero``) or look empty
    (most character devices), so it is refused rather than scanned."""


def file_kind(mode: int) -> str:
    """What ``mode`` (an ``st_mode``) is, in words a user recognises."""
    kinds = (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    )
    for test, kind in kinds:
        if test(mode):
            return kind
    return f"a special file (mode {stat.filemode(mode)})"


def not_regular(mode: int) -> NotRegularFile:
    return NotRegularFile(f"not a regular file but {file_kind(mode)}; refusing to read it")


@runtime_checkable
class ByteSource(Protocol):
    """Readable bytes of known size."""

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``; fewer only at end of data."""
        ...


class FileSource:
    """A local file read with ``pread``; optionally fingerprints itself as it is read.

    The SHA-256 is computed in the same pass as scanning: every read that continues the
    already-hashed prefix advances the digest, so a front-to-back scanner (pickle) hashes
    for free, and :meth:`finish_digest` hashes whatever the scanner skipped.
    """

    def __init__(
        self, path: str | os.PathLike[str], on_progress: Callable[[int], None] | None = None
    ) -> None:
        self.path = os.fspath(path)
        self._on_progress = on_progress  # called with the number of newly hashed bytes
        # O_NONBLOCK: opening a FIFO that was swapped in after the caller's stat must not
        # hang (it has no effect on regular files); O_NOCTTY: a terminal device never becomes
        # our controlling terminal. What was opened is checked with fstat, race-free.
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise not_regular(info.st_mode)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._size = info.st_size
        self._sha = hashlib.sha256()
        self._hashed = 0
        self.bytes_read = 0
        # A small file is read once, whole, at its first read, and served from memory: a
        # scan of a torch.save zip makes about 80 small reads of a 14 KB file, which cost
        # more in system calls than the scan of its pickle (issue 14: many files). Every
        # byte is hashed by the end anyway, so nothing is read that would not have been.
        self._whole: bytes | None = None

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        if self._whole is not None:
            return self._whole[offset : offset + length]
        if offset >= self._size or length == 0:
            return b""
        if self._size <= WHOLE_FILE_BYTES:
            self._whole = self._read_whole()
            return self._whole[offset : offset + length]
        length = min(length, self._size - offset)
        data = os.pread(self._fd, length, offset)
        self.bytes_read += len(data)
        if offset <= self._hashed < offset + len(data):
            self._sha.update(memoryview(data)[self._hashed - offset :])
            advanced = offset + len(data) - self._hashed
            self._hashed = offset + len(data)
            if self._on_progress is not None:
                self._on_progress(advanced)
        return data

    def _read_whole(self) -> bytes:
        """The file's bytes, hashed; what a file that changed since it was opened still
        holds (a shorter snapshot: finish_digest reports that it shrank)."""
        data = os.pread(self._fd, self._size, 0)
        self.bytes_read += len(data)
        self._sha.update(data)
        self._hashed = len(data)
        if self._on_progress is not None and data:
            self._on_progress(len(data))
        return data

    def finish_digest(self) -> str:
        """Hash the rest of the file and return the hex SHA-256.

        For a multi-GB file this loop is most of the scan's wall time, so it overlaps the
        two halves: while one buffer is being hashed (hashlib releases the GIL), the next
        is read into the other. Two reused buffers, no allocation per chunk. A rest that fits
        one buffer has nothing to overlap: it is hashed here, without a thread."""
        if self._hashed >= self._size:
            return self._sha.hexdigest()
        if self._size - self._hashed <= HASH_CHUNK:
            self.read_at(self._hashed, self._size - self._hashed)  # advances the digest
            if self._hashed < self._size:
                raise OSError(f"{self.path}: file shrank while it was being scanned")
            return self._sha.hexdigest()
        from concurrent.futures import Future, ThreadPoolExecutor

        buffers = (bytearray(HASH_CHUNK), bytearray(HASH_CHUNK))
        hashing: Future[None] | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as pool:
            turn = 0
            while self._hashed < self._size:
                buffer = buffers[turn]
                n = os.preadv(self._fd, [buffer], self._hashed)
                if n <= 0:
                    raise OSError(f"{self.path}: file shrank while it was being scanned")
                if hashing is not None:
                    hashing.result()  # the other buffer is hashed; order is preserved
                hashing = pool.submit(self._sha.update, memoryview(buffer)[:n])
                self._hashed += n
                self.bytes_read += n
                if self._on_progress is not None:
                    self._on_progress(n)
                turn ^= 1
            if hashing is not None:
                hashing.result()
        return self._sha.hexdigest()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BytesSource:
    """Bytes already in memory (small members, test fixtures)."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)

    @property
    def size(self) -> int:
        return len(self._data)

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        return self._data[offset : offset + length]


class SliceSource:
    """A window ``[start, start+length)`` of another source (stored zip members, tar members)."""

    def __init__(self, parent: ByteSource, start: int, length: int) -> None:
        if start < 0 or length < 0 or start + length > parent.size:
            raise ValueError(f"slice [{start}, {start + length}) outside a source of {parent.size} bytes")
        self._parent = parent
        self._start = start
        self._length = length

    @property
    def size(self) -> int:
        return self._length

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        if offset >= self._length:
            return b""
        length = min(length, self._length - offset)
        return self._parent.read_at(self._start + offset, length)


class SpoolSource:
    """A finished temporary spool (memory, or a file past its threshold) as a source."""

    def __init__(self, spool: tempfile.SpooledTemporaryFile[bytes], size: int) -> None:
        self._spool = spool
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        self._spool.seek(offset)
        return self._spool.read(length)

    def close(self) -> None:
        self._spool.close()

    def __enter__(self) -> SpoolSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SpooledSource(SpoolSource):
    """A stream (decompressor, tar member) copied into memory or, past a threshold, a
    temporary file, refusing to grow past ``limit`` bytes. Close it to free the disk."""

    MEMORY_THRESHOLD = 8 << 20

    def __init__(self, stream: IO[bytes] | io.RawIOBase, limit: int, what: str = "stream") -> None:
        spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(
            max_size=self.MEMORY_THRESHOLD
        )
        total = 0
        try:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    raise LimitExceeded(
                        f"{what} expands past the limit of {limit} bytes; not inspected further"
                    )
                spool.write(chunk)
        except BaseException:
            spool.close()
            raise
        super().__init__(spool, total)


class SequentialReader:
    """Front-to-back reading of a source with a bounded buffer.

    ``read(n)`` returns exactly ``n`` bytes or raises :class:`EOFError`; ``skip(n)`` moves
    on without keeping the bytes (still reading them, so a fingerprinting source hashes
    them); ``readline(limit)`` stops at ``\\n`` and refuses lines over ``limit`` bytes.
    """

    def __init__(self, source: ByteSource, start: int = 0, chunk: int = CHUNK) -> None:
        self.source = source
        self._chunk = chunk
        self._buf = b""
        self._buf_pos = 0  # index into _buf
        self._buf_start = start  # source offset of _buf[0]

    @property
    def offset(self) -> int:
        return self._buf_start + self._buf_pos

    def _fill(self) -> bool:
        next_start = self._buf_start + len(self._buf)
        data = self.source.read_at(next_start, self._chunk)
        if not data:
            return False
        self._buf = self._buf[self._buf_pos :] + data
        self._buf_start = next_start - (len(self._buf) - len(data))
        self._buf_pos = 0
        return True

    def read(self, n: int) -> bytes:
        if n < 0:
            raise ValueError("negative length")
        if n > self._chunk * 4:
            # Large reads go straight to the source instead of through the buffer.
            head = self._buf[self._buf_pos :]
            start = self.offset + len(head)
            rest = self.source.read_at(start, n - len(head))
            if len(head) + len(rest) < n:
                raise EOFError(f"wanted {n} bytes at offset {self.offset}, data ends first")
            self._buf_start = start + len(rest)
            self._buf = b""
            self._buf_pos = 0
            return head + rest
        while len(self._buf) - self._buf_pos < n:
            if not self._fill():
                raise EOFError(f"wanted {n} bytes at offset {self.offset}, data ends first")
        out = self._buf[self._buf_pos : self._buf_pos + n]
        self._buf_pos += n
        return out

    def peek(self, n: int) -> bytes:
        while len(self._buf) - self._buf_pos < n:
            if not self._fill():
                break
        return self._buf[self._buf_pos : self._buf_pos + n]

    def skip(self, n: int) -> None:
        """Advance ``n`` bytes, reading through them in chunks (bounded memory)."""
        if n < 0:
            raise ValueError("negative length")
        available = len(self._buf) - self._buf_pos
        if n <= available:
            self._buf_pos += n
            return
        n -= available
        pos = self._buf_start + len(self._buf)
        end = pos + n
        while pos < end:
            data = self.source.read_at(pos, min(self._chunk, end - pos))
            if not data:
                raise EOFError(f"wanted to skip to offset {end}, data ends at {pos}")
            pos += len(data)
        self._buf = b""
        self._buf_pos = 0
        self._buf_start = end

    def readline(self, limit: int) -> bytes:
        """Bytes up to and including ``\\n``; EOFError if none within ``limit`` bytes."""
        while True:
            idx = self._buf.find(b"\n", self._buf_pos)
            if idx >= 0:
                if idx + 1 - self._buf_pos > limit:
                    raise LimitExceeded(f"line longer than {limit} bytes at offset {self.offset}")
                out = self._buf[self._buf_pos : idx + 1]
                self._buf_pos = idx + 1
                return out
            if len(self._buf) - self._buf_pos > limit:
                raise LimitExceeded(f"line longer than {limit} bytes at offset {self.offset}")
            if not self._fill():
                raise EOFError(f"line without newline at offset {self.offset}")

    def at_end(self) -> bool:
        return not self.peek(1)


class SourceStream(io.RawIOBase):
    """A read-only file-like view of a source, for stdlib parsers that want one (zipfile,
    tarfile, decompressors). It exposes bytes only; it is never given to a model loader."""

    def __init__(self, source: ByteSource) -> None:
        self._source = source
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._source.size + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if pos < 0:
            raise OSError("seek before start")
        self._pos = pos
        return pos

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer)
        data = self._source.read_at(self._pos, len(view))
        n = len(data)
        view[:n] = data
        self._pos += n
        return n


def as_stream(source: ByteSource) -> BinaryIO:
    """A buffered file-like object over ``source``."""
    return io.BufferedReader(SourceStream(source), buffer_size=CHUNK)


def iter_chunks(source: ByteSource, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    end = source.size if end is None else end
    pos = start
    while pos < end:
        data = source.read_at(pos, min(CHUNK, end - pos))
        if not data:
            return
        pos += len(data)
        yield data
