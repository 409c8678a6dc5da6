"""Handing archive members to the engine: spooling decoded data under limits, and routing
pickles to the pickle analysis (or failing closed when there is none). Members are
recognised through the scan context (:meth:`~modelsec.context.ScanContext.sniff`), never
through the format registry, which imports the containers that import this module."""

from __future__ import annotations

from dataclasses import dataclass

from modelsec.archive import threats
from modelsec.archive.decompress import BombDetected, DecodeStream, UnsupportedCodec
from modelsec.bytesource import ByteSource, LimitExceeded, SpooledSource
from modelsec.context import HEAD_SIZE, ScanContext


def scan_pickle(ctx: ScanContext, source: ByteSource, name: str) -> None:
    """Scan ``source`` as a pickle stream whatever its first bytes look like (a loader
    will unpickle it). Without a pickle analysis registered this fails closed."""
    if not ctx.knows_format("pickle"):
        ctx.incomplete(
            "pickle data cannot be analysed: no pickle scanner is installed; failing closed",
            code=threats.INCOMPLETE_NO_PICKLE_ANALYSIS,
            path=ctx.member_path(name),
        )
        return
    ctx.scan_member(source, name, expect="pickle")


@dataclass
class Decoded:
    """A decompressed member: its spooled bytes (possibly partial) and what went wrong."""

    source: SpooledSource
    error: str | None
    trailing_offset: int | None
    crc32: int
    consumed: int

    def close(self) -> None:
        self.source.close()


def spool_decoded(ctx: ScanContext, stream: DecodeStream, name: str) -> Decoded | None:
    """Copy ``stream`` into a bounded spool. Limits become a bomb finding or an
    incomplete on ``name``; corrupt data yields the partial output with ``error`` set."""
    path = ctx.member_path(name)
    try:
        spool = SpooledSource(stream, ctx.limits.max_spool_bytes, what=f"member {name}")
    except BombDetected as exc:
        ctx.report(threats.DECOMPRESSION_BOMB.at(path, str(exc)))
        return None
    except UnsupportedCodec as exc:
        ctx.incomplete(f"cannot decompress: {exc}", threats.INCOMPLETE_UNSUPPORTED_METHOD, path)
        return None
    except LimitExceeded as exc:
        ctx.incomplete(f"{exc}; failing closed", threats.INCOMPLETE_LIMIT, path)
        return None
    return Decoded(spool, stream.error, stream.trailing_offset, stream.crc32, stream.consumed)


def decode_head(stream: DecodeStream, limit: int = HEAD_SIZE) -> bytes:
    """Up to ``limit`` decoded bytes from the start of ``stream`` (for sniffing)."""
    parts: list[bytes] = []
    total = 0
    while total < limit:
        chunk = stream.read(limit - total)
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)
