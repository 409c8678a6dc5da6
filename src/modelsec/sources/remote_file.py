"""A :class:`~modelsec.bytesource.ByteSource` over range reads of a remote object.

Format scanners read only what they need (a safetensors header, a zip's central directory
and its pickle members, a GGUF header), so mapping ``read_at`` to HTTP ``Range`` requests
makes a scan of a multi-gigabyte model transfer kilobytes to megabytes. Details:

* **Block cache.** Reads are rounded to ``block_size`` blocks; missing blocks of one read
  are fetched in as few requests as possible (contiguous runs) and kept in a small LRU, so
  the engine's many small reads (detection head, then the header the scanner parses)
  coalesce. A read that continues the previous one doubles a read-ahead window (capped), so
  front-to-back scanners (raw pickles) make few large requests.
* **Accounting.** :class:`TransferStats` counts requests and bytes received, per scan.
* **Fingerprints: computed, or claimed.** The source may claim a SHA-256 (Hub LFS) or
  another digest; the file is not read whole to check it. If the scan happens to read a file
  whole (front to back), the bytes are hashed on the way and checked against the claim, and
  only then does :attr:`RemoteFile.sha256` hold a value.
* **The listing is checked against the answers.** Every partial answer must say the
  object's total size (``Content-Range``) and it must be the listed size; a file listed as
  empty is still asked for (:meth:`RemoteFile.confirm_empty`), so a listing cannot hide
  content from the scan by understating a size.
* **Whole-file fallback.** When range reads of one file pass ``whole_fraction`` of its size
  (a scanner that needs most of it anyway), the file is streamed once into the bounded
  :class:`TempArea`, hashed and verified while streaming, and served from disk; the copy is
  deleted when the file is closed, and the area when the scan ends.
* **Failures are sticky.** A read that fails raises :class:`SourceFailure` (never returns
  short data that a scanner could mistake for end of file) and the failure is kept so that
  the scan reports it on the file with its MS-SRC code, whatever the scanner did with it.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from typing import Protocol

from modelsec.sources import retry
from modelsec.sources.errors import INTEGRITY, TEMP_LIMIT, SourceFailure

MAX_READAHEAD = 8 << 20
MAX_REQUEST_BYTES = 16 << 20  # one range request at most: each must finish within requestDeadline
DISK_RESERVE = 1 << 30  # leave this much free on the temporary filesystem


_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


def check_range_answer(content_range: str | None, start: int | None, size: int, what: str) -> None:
    """A partial answer (206, or 416 with ``start=None``) must say which bytes it holds and
    of what total, and the total must be the listed size: a listing that understates a
    file's size must not make the scan read a prefix and call it the file."""
    match = _CONTENT_RANGE.fullmatch((content_range or "").strip())
    if match is None:
        raise SourceFailure(
            INTEGRITY,
            f"{what}: partial answer without a valid Content-Range ({(content_range or '')[:80]!r}); "
            "cannot check the bytes against the listing",
        )
    first, _, total = match.groups()
    if start is not None and (first is None or int(first) != start):
        raise SourceFailure(
            INTEGRITY, f"{what}: asked for bytes from {start}, the server sent from {first or '*'}"
        )
    if total == "*" or int(total) != size:
        raise SourceFailure(
            INTEGRITY,
            f"{what}: the server gives the file's size as {total} (Content-Range), the listing as "
            f"{size}; the listing does not describe the bytes served",
        )


def check_total_size(content_length: str | int | None, size: int, what: str) -> None:
    """A whole answer's announced length, if any, must be the listed size."""
    if content_length is None or str(content_length).strip() == "":
        return
    if not str(content_length).strip().isdigit() or int(content_length) != size:
        raise SourceFailure(
            INTEGRITY,
            f"{what}: the server gives the file's size as {str(content_length)[:40]!r} "
            f"(Content-Length), the listing as {size}; the listing does not describe the bytes served",
        )


class RangeNotSupported(Exception):
    """Raised by a fetcher whose server ignored ``Range`` (answered the whole object): the
    file is then downloaded whole into the temporary area instead."""


class RangeFetcher(Protocol):
    """How one remote object is read. Both methods raise :class:`retry.Transient` for
    failures worth retrying and :class:`SourceFailure` for final ones."""

    def fetch(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``; exactly that many unless the object is shorter."""
        ...

    def stream(self) -> Generator[bytes, None, None]:
        """The whole object, in chunks (closed early if the reader stops)."""
        ...


@dataclass
class TransferStats:
    """Network traffic of one scan."""

    requests: int = 0
    bytes: int = 0
    whole_files: int = 0

    def add(self, nbytes: int) -> None:
        self.requests += 1
        self.bytes += nbytes


class TempArea:
    """A per-scan temporary directory with a byte budget; :meth:`cleanup` removes it."""

    def __init__(self, root: str, budget: int) -> None:
        self._root_parent = root
        self._budget = budget
        self._used = 0
        self._dir: str | None = None

    def _root(self) -> str:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="modelsec-remote-", dir=self._root_parent)
        return self._dir

    def charge(self, nbytes: int, what: str) -> None:
        """Count ``nbytes`` against the budget; :class:`SourceFailure` if over it or over
        the free disk."""
        if self._used + nbytes > self._budget:
            raise SourceFailure(
                TEMP_LIMIT,
                f"{what}: downloading {nbytes} bytes whole would exceed the temporary area "
                f"limit of {self._budget} bytes (maxDownloadBytes); not inspected",
            )
        free = shutil.disk_usage(self._root()).free
        if nbytes + DISK_RESERVE > free:
            raise SourceFailure(
                TEMP_LIMIT,
                f"{what}: downloading {nbytes} bytes whole needs more free disk than the "
                f"{free} bytes left under {self._root_parent}; not inspected",
            )
        self._used += nbytes

    def reserve(self, nbytes: int, what: str) -> str:
        """A new file path for ``nbytes`` of download, charged to the budget."""
        self.charge(nbytes, what)
        fd, path = tempfile.mkstemp(dir=self._root())
        os.close(fd)
        return path

    def subdir(self, name: str) -> str:
        path = os.path.join(self._root(), name)
        os.makedirs(path, exist_ok=True)
        return path

    def release(self, path: str, nbytes: int) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self._used -= nbytes

    def cleanup(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self._used = 0


def git_blob_id(size: int) -> hashlib._Hash:
    """A SHA-1 primed with git's blob header: the object id of a non-LFS Hub file."""
    h = hashlib.sha1(usedforsecurity=False)
    h.update(f"blob {size}\0".encode())
    return h


class RemoteFile:
    """Random access to one remote object of known size. Not thread-safe (one scan reads
    one file at a time)."""

    def __init__(
        self,
        name: str,
        size: int,
        fetcher: RangeFetcher,
        *,
        stats: TransferStats,
        policy: retry.RetryPolicy,
        temp: TempArea,
        block_size: int = 16 << 10,
        cache_bytes: int = 16 << 20,
        whole_fraction: float = 0.5,
        expected_sha256: str | None = None,
        expected_git_blob: str | None = None,
    ) -> None:
        self.name = name
        self._size = size
        self._fetcher = fetcher
        self._stats = stats
        self._policy = policy
        self._temp = temp
        self._bs = block_size
        self._cache: collections.OrderedDict[int, bytes] = collections.OrderedDict()
        self._cache_blocks = max(cache_bytes // block_size, 4)
        self._whole_fraction = whole_fraction
        self.expected_sha256 = expected_sha256.lower() if expected_sha256 else None
        self.expected_git_blob = expected_git_blob.lower() if expected_git_blob else None
        self.failure: SourceFailure | None = None
        self.bytes_fetched = 0  # range reads of this file (not counting a whole download)
        self.sha256: str | None = None  # set once the content was seen whole and verified
        self._sha = hashlib.sha256()
        self._blob = git_blob_id(size) if self.expected_git_blob else None
        self._hashed = 0
        self._last_end = -1
        self._readahead = 0
        self._spool: str | None = None
        self._spool_fd = -1

    # --- ByteSource -------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        if offset >= self._size or length == 0:
            return b""
        if self.failure is not None:
            raise self.failure
        end = min(self._size, offset + length)
        try:
            data = self._read(offset, end)
            self._advance_digest(offset, data)
        except SourceFailure as exc:
            self.failure = exc
            raise
        self._last_end = end
        return data

    # --- reading ----------------------------------------------------------------------

    def _read(self, start: int, end: int) -> bytes:
        sequential = start == self._last_end
        if self._spool is None and not sequential and self._should_go_whole(end - start):
            self._download_whole()
        if self._spool is not None:
            return os.pread(self._spool_fd, end - start, start)
        if end - start > self._cache_blocks * self._bs // 2:
            # A large read would flush the cache: fetch it directly.
            return self._fetch(start, end)
        self._readahead = min(MAX_READAHEAD, max(self._bs, self._readahead * 2)) if sequential else 0
        first, last = start // self._bs, (end - 1) // self._bs
        blocks: dict[int, bytes] = {}
        run: list[int] = []
        for index in range(first, last + 1):
            cached = self._cache.get(index)
            if cached is not None:
                self._cache.move_to_end(index)
                blocks[index] = cached
                if run:
                    self._fetch_blocks(run[0], run[-1], blocks, extra=0)
                    run = []
            else:
                run.append(index)
        if run:
            self._fetch_blocks(run[0], run[-1], blocks, extra=self._readahead)
        joined = b"".join(blocks[i] for i in range(first, last + 1))
        skip = start - first * self._bs
        return joined[skip : skip + (end - start)]

    def _fetch_blocks(self, first: int, last: int, out: dict[int, bytes], extra: int) -> None:
        start = first * self._bs
        end = min(self._size, (last + 1) * self._bs + extra)
        end = min(self._size, -(-end // self._bs) * self._bs)  # whole blocks
        data = self._fetch(start, end)
        for offset in range(0, len(data), self._bs):
            index = (start + offset) // self._bs
            block = data[offset : offset + self._bs]
            if first <= index <= last:
                out[index] = block
            self._cache[index] = block
            self._cache.move_to_end(index)
        while len(self._cache) > self._cache_blocks:
            self._cache.popitem(last=False)

    def _fetch(self, start: int, end: int) -> bytes:
        if end - start > MAX_REQUEST_BYTES:  # each request must fit its deadline
            return b"".join(
                self._fetch(at, min(end, at + MAX_REQUEST_BYTES))
                for at in range(start, end, MAX_REQUEST_BYTES)
            )
        try:
            data = retry.call(lambda: self._fetcher.fetch(start, end), self._policy, what=self.name)
        except RangeNotSupported:
            if self._spool is None:
                self._download_whole()
            assert self._spool is not None
            return os.pread(self._spool_fd, end - start, start)
        self._stats.add(len(data))
        self.bytes_fetched += len(data)
        if len(data) != end - start:
            raise SourceFailure(
                INTEGRITY,
                f"{self.name}: asked for bytes {start}-{end - 1}, got {len(data)} bytes; the "
                f"object is not the {self._size} bytes the listing announced (changed during "
                "the scan?)",
            )
        return data

    def _should_go_whole(self, upcoming: int) -> bool:
        # Only scattered reads switch: a front-to-back reader is served as well by range
        # reads with read-ahead, and its bytes are hashed (and verified) on the way.
        if self._size <= 4 * self._bs:
            return False  # small files: a couple of range reads are cheaper than a download
        return self.bytes_fetched + upcoming > self._whole_fraction * self._size

    def _download_whole(self) -> None:
        path = self._temp.reserve(self._size, self.name)
        self._spool = path
        self._spool_fd = os.open(path, os.O_RDWR)

        def attempt() -> None:
            os.ftruncate(self._spool_fd, 0)
            sha = hashlib.sha256()
            blob = git_blob_id(self._size) if self.expected_git_blob else None
            written = 0
            with self._policy.download(), contextlib.closing(self._fetcher.stream()) as chunks:
                for chunk in chunks:
                    written += len(chunk)
                    if written > self._size:
                        raise SourceFailure(
                            INTEGRITY, f"{self.name}: longer than the {self._size} bytes announced"
                        )
                    os.write(self._spool_fd, chunk)
                    sha.update(chunk)
                    if blob is not None:
                        blob.update(chunk)
                    self._stats.bytes += len(chunk)
            self._stats.requests += 1
            if written != self._size:
                raise SourceFailure(
                    INTEGRITY,
                    f"{self.name}: download ended after {written} of {self._size} bytes",
                )
            self._verify(sha.hexdigest(), blob.hexdigest() if blob else None, "downloaded whole")

        retry.call(attempt, self._policy, what=self.name)
        self._stats.whole_files += 1
        self._cache.clear()
        self._hashed = self._size

    # --- fingerprints -----------------------------------------------------------------

    def _advance_digest(self, offset: int, data: bytes) -> None:
        if self._hashed >= self._size or not offset <= self._hashed < offset + len(data):
            return
        fresh = memoryview(data)[self._hashed - offset :]
        self._sha.update(fresh)
        if self._blob is not None:
            self._blob.update(fresh)
        self._hashed = offset + len(data)
        if self._hashed == self._size:
            self._verify(self._sha.hexdigest(), self._blob.hexdigest() if self._blob else None, "read whole")

    def _verify(self, sha256: str, blob: str | None, how: str) -> None:
        if self.expected_sha256 and sha256 != self.expected_sha256:
            raise SourceFailure(
                INTEGRITY,
                f"{self.name}: content {how} has SHA-256 {sha256}, but the source lists "
                f"{self.expected_sha256}; the bytes served are not the file the source "
                "describes",
            )
        if self.expected_git_blob and blob is not None and blob != self.expected_git_blob:
            raise SourceFailure(
                INTEGRITY,
                f"{self.name}: content {how} has git blob id {blob}, but the source lists "
                f"{self.expected_git_blob}",
            )
        self.sha256 = sha256

    def complete_digest(self, up_to: int) -> str | None:
        """Finish the SHA-256 by reading the rest, if the file is at most ``up_to`` bytes
        (the bytes are mostly cached already); else the SHA-256 if it is known. Only a
        digest computed here (and checked against the source's claim) is returned."""
        if self.sha256 is None and self.failure is None and self._size <= up_to:
            while self._hashed < self._size:
                self._last_end = self._hashed  # a front-to-back read: no whole download
                self.read_at(self._hashed, min(self._size - self._hashed, 1 << 20))
        if self._size == 0 and self.sha256 is None and self.failure is None:
            try:
                self._verify(hashlib.sha256().hexdigest(), git_blob_id(0).hexdigest(), "read whole")
            except SourceFailure as exc:
                self.failure = exc
                raise
        return self.sha256

    def confirm_empty(self) -> None:
        """A file listed as empty is never read by a scanner (there is nothing to read), so
        a listing could hide a whole file behind ``size: 0``. Ask for it once and accept
        only an empty answer; a failure is kept like a read's."""
        if self._size != 0 or self.failure is not None:
            return

        def attempt() -> None:
            with contextlib.closing(self._fetcher.stream()) as chunks:
                for chunk in chunks:
                    if chunk:
                        raise SourceFailure(
                            INTEGRITY,
                            f"{self.name}: listed as 0 bytes, but the server serves content for "
                            "it; the listing hides what a loader would read (not inspected)",
                        )

        self._stats.requests += 1
        try:
            retry.call(attempt, self._policy, what=self.name)
        except SourceFailure as exc:
            self.failure = exc
            raise

    def close(self) -> None:
        self._cache.clear()
        if self._spool is not None:
            os.close(self._spool_fd)
            self._temp.release(self._spool, self._size)
            self._spool = None
            self._spool_fd = -1
