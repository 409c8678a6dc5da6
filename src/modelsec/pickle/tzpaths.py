"""Strings pandas reads as time-zone *file paths*.

pandas resolves a time-zone string ``"dateutil/<name>"`` with ``dateutil.tz.gettz``, which
opens ``<name>`` as a file when it is a path: ``DatetimeIndex([], None,
"dateutil//etc/hostname")`` reads the file, and a FIFO or ``/dev/zero`` there hangs or
floods the loader. Any pandas constructor given a tz or a dtype string
(``"datetime64[ns, dateutil/..."``) can be pointed at one. Real pickles carry time zones as
objects, never as such strings, so a pandas callable handed one is a finding.

The string need not be a literal: ``str(b"dateutil/...", "ascii")``, a codec's output or a
numpy ``<U`` scalar (UTF-32 bytes) make it at load time. Those are read through, and a
string the machine cannot read (a codec it does not follow, bytes it did not keep) fails
closed.
"""

from __future__ import annotations

from modelsec.pickle.loaders import IDENTITY
from modelsec.pickle.opcodes import Blob
from modelsec.pickle.values import Call, Container, Derived, Global, Value

TZ_FILE_PREFIX = "dateutil/"
_SPELLINGS = tuple(
    TZ_FILE_PREFIX.encode(codec) for codec in ("latin-1", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)
# Callables whose result is a string (or str subclass) built from their arguments' bytes.
STRING_MAKERS = frozenset(
    {
        "builtins.str",
        "builtins.bytes",
        "builtins.bytearray",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
    }
)
_MAX_DEPTH = 6


def may_name_a_tz_file(value: Value, depth: int = 0, *, made: bool = False) -> bool:
    """Whether ``value`` (a call's arguments) holds, or makes at load time, a string that
    contains ``dateutil/``. ``made``: inside a string maker, where unread bytes count."""
    if isinstance(value, str):
        return TZ_FILE_PREFIX in value
    if isinstance(value, (bytes, bytearray)):
        return any(spelling in value for spelling in _SPELLINGS)
    if isinstance(value, Blob):
        # A literal too large to keep: what it holds is unknown, so it fails closed as a
        # string that may be one (a 9 KiB "dateutil/..." str was ALLOWED, session 23) and
        # as bytes a maker may turn into one, the same as bytes whose content is read.
        return True
    if depth > _MAX_DEPTH:
        return True  # nested deeper than read: what it holds is unknown, fail closed
    if isinstance(value, Derived):
        # bytes(x), bytearray(x) and a text codec keep the prefix visible in their source;
        # base64, hex, zlib or a codec the machine does not follow (rot13) do not
        if value.transform == IDENTITY or value.transform.startswith(("encode:", "decode:")):
            return may_name_a_tz_file(value.source, depth + 1, made=True)
        return True
    if isinstance(value, tuple):
        return any(may_name_a_tz_file(item, depth + 1, made=made) for item in value)
    if isinstance(value, Container):
        if value.dropped or value.opaque_keys:
            return True  # items past the machine's cap (a string after 64 fillers): unknown
        parts = [part for pair in value.items for part in pair] if value.kind == "dict" else value.items
        return any(may_name_a_tz_file(item, depth + 1, made=made) for item in parts)
    if isinstance(value, Call) and _makes_a_string(value):
        return may_name_a_tz_file(value.args, depth + 1, made=True)
    return False


def _makes_a_string(call: Call) -> bool:
    """str(...), and a str built as an instance of str: copyreg._reconstructor(str, str, s),
    copyreg.__newobj__(str, s) or NEWOBJ/OBJ of builtins.str (``cls`` is the class built)."""
    return any(isinstance(named, Global) and named.path in STRING_MAKERS for named in (call.origin, call.cls))
