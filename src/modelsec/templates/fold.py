"""Constant folding of the string and list operations templates use to assemble names.

Only pure operations on already-known constants are folded, each with bounds checked
*before* the operation runs (a ``'%999999999s'`` or ``'x' * 10**9`` must not allocate), and
only through code written here or Jinja's own pure string helpers: no attribute lookups,
no filter that takes an ``attribute=``, nothing that could touch a Python object's internals.
Anything that cannot be folded becomes an inexact value (see :mod:`.values`).
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Callable
from typing import Any

import markupsafe
from jinja2.filters import do_title

from modelsec.templates.values import (
    BOOL,
    DATA,
    MAX_CONSTS,
    MAX_STR,
    MAX_TUPLE,
    NOTHING,
    NUM,
    OBJ,
    TEXT,
    TOP,
    Val,
    elements,
    estimated_len,
    from_values,
    only_data,
    to_str,
)

MAX_WIDTH = 4096  # widths and padding in folded formatting


class Unfoldable(Exception):
    """This constant combination cannot (or must not) be folded."""


def _check_len(n: int) -> None:
    if n > MAX_STR:
        raise Unfoldable("result too long")


def _nonconst_part(val: Val) -> Val:
    return Val(num=val.num, data=val.data, text=val.text, obj=val.obj, seq=val.seq)


def lift(args: list[Val], fn: Callable[..., Any], fallback: Val) -> Val:
    """Apply ``fn`` to every combination of the arguments' constants; the non-constant
    parts of any argument (and any combination ``fn`` refuses) contribute ``fallback``."""
    out = NOTHING
    if any(not a.exact for a in args):
        out = fallback
    if any(not a.consts for a in args):
        return out
    sizes = 1
    for a in args:
        sizes *= len(a.consts)
    if sizes > MAX_CONSTS:
        return out.join(fallback)
    results = []
    for combo in itertools.product(*(list(a.values) for a in args)):
        try:
            results.append(fn(*combo))
        except Exception:
            out = out.join(fallback)
    return out.join(from_values(results))


# --- operators ------------------------------------------------------------------------------


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) or isinstance(v, bool)


def concat(*parts: Any) -> str:
    pieces = []
    total = 0
    for p in parts:
        s = to_str(p)
        if s is None:
            raise Unfoldable("too long")
        total += len(s)
        _check_len(total)
        pieces.append(s)
    return "".join(pieces)


def add(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        _check_len(len(a) + len(b))
        return a + b
    if isinstance(a, tuple) and isinstance(b, tuple):
        if len(a) + len(b) > MAX_TUPLE:
            raise Unfoldable("too long")
        return a + b
    if _is_num(a) and _is_num(b):
        return a + b
    raise Unfoldable("type")


def mul(a: Any, b: Any) -> Any:
    if isinstance(a, (str, tuple)) and isinstance(b, int):
        a, b = b, a
    if isinstance(a, int) and isinstance(b, (str, tuple)):
        if a > 0 and len(b) * a > (MAX_STR if isinstance(b, str) else MAX_TUPLE):
            raise Unfoldable("too long")
        return b * a
    if _is_num(a) and _is_num(b):
        return a * b
    raise Unfoldable("type")


def pow_(a: Any, b: Any) -> Any:
    if _is_num(a) and _is_num(b) and abs(b) <= 64 and abs(a) <= 1 << 16:
        return a**b
    raise Unfoldable("pow")


def arith(op: str) -> Callable[[Any, Any], Any]:
    def fn(a: Any, b: Any) -> Any:
        if not (_is_num(a) and _is_num(b)):
            raise Unfoldable("type")
        if op == "-":
            return a - b
        if op == "/":
            return a / b
        if op == "//":
            return a // b
        raise Unfoldable(op)

    return fn


_PRINTF = re.compile(r"%(?:\([^()%]{0,64}\))?[#0\- +]{0,5}\d{0,3}(?:\.\d{1,3})?[diouxXeEfFgGcrsa%]")


def _bound_formatting(fmt: str, fields: int, args: Any) -> None:
    """Refuse a formatting whose result could exceed MAX_STR: every field may print the
    longest argument padded to a 3-digit width."""
    values = args.values() if isinstance(args, dict) else args if isinstance(args, tuple) else (args,)
    longest = max((estimated_len(v) for v in values), default=0)
    _check_len(len(fmt) + fields * (longest + 2000))


def printf(fmt: str, args: Any) -> str:
    """``fmt % args`` (the ``%`` operator and the ``format`` filter), with small widths only."""
    if "%" in _PRINTF.sub("", fmt):
        raise Unfoldable("unsupported conversion")
    _bound_formatting(fmt, len(_PRINTF.findall(fmt)), args)
    result: str = fmt % args  # str.__mod__: the folded arguments are plain constants
    _check_len(len(result))
    return result


def modulo(a: Any, b: Any) -> Any:
    if isinstance(a, str):
        return printf(a, b)
    if _is_num(a) and _is_num(b) and b:
        return a % b
    raise Unfoldable("type")


def _index(value: Any, key: Any) -> Any:
    if isinstance(value, (str, tuple)) and isinstance(key, int) and not isinstance(key, bool):
        return value[key]
    raise Unfoldable("getitem")


def _slice(value: Any, start: Any, stop: Any, step: Any) -> Any:
    if not isinstance(value, (str, tuple)):
        raise Unfoldable("slice")
    for part in (start, stop, step):
        if part is not None and not isinstance(part, int):
            raise Unfoldable("slice")
    if step == 0:
        raise Unfoldable("slice step 0")
    return value[slice(start, stop, step)]


def getitem(value: Val, key: Val) -> Val:
    """``value[key]`` for an integer key; string keys are attribute-like and handled by the
    caller (they are a name position)."""
    fallback = elements(value) if not value.exact else NOTHING
    if value.data:
        fallback = fallback.join(DATA)
    return lift([value, key], _index, fallback.join(elements(value)))


def getslice(value: Val, start: Val, stop: Val, step: Val) -> Val:
    fallback = NOTHING
    if value.data:
        fallback = fallback.join(DATA)
    if value.text:
        fallback = fallback.join(TEXT)
    if value.obj:
        fallback = fallback.join(TOP)
    if value.seq is not None:
        fallback = fallback.join(Val(seq=value.seq))
    if not (start.exact and stop.exact and step.exact):
        # An unknown bound: the constant parts of value, sliced somehow, are still strings
        # or lists of the same characters/items.
        fallback = fallback.join(TEXT if any(isinstance(v, str) for v in value.values) else NOTHING)
        fallback = fallback.join(Val(seq=elements(Val(value.consts))) if value.consts else NOTHING)
    return lift([value, start, stop, step], _slice, fallback)


# --- str.format -----------------------------------------------------------------------------


def format_fields(fmt: str) -> list[tuple[str, list[tuple[bool, Any]]]] | None:
    """The replacement fields of a ``str.format`` string: (field, [(is_attribute, key)]).
    None if the string is not a valid format string."""
    import _string  # type: ignore[import-not-found]  # CPython's own field-name splitter, as str.format uses; typeshed has no stub for it

    out = []
    try:
        for _literal, field_name, spec, _conv in string.Formatter().parse(fmt):
            if field_name is None:
                continue
            first, rest = _string.formatter_field_name_split(field_name)
            accessors = [(bool(is_attr), key) for is_attr, key in rest]
            out.append((field_name, accessors))
            if spec and "{" in spec:
                nested = format_fields(spec)
                if nested is None:
                    return None
                out.extend(nested)
    except (ValueError, TypeError):
        return None
    return out


_SPEC_NUMBER = re.compile(r"\d{4,}")


def str_format(fmt: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if not isinstance(fmt, str):
        raise Unfoldable("type")
    fields = format_fields(fmt)
    if fields is None or any(acc for _f, acc in fields):
        raise Unfoldable("attribute access in format field")
    for _literal, _name, spec, _conv in string.Formatter().parse(fmt):
        if spec and ("{" in spec or _SPEC_NUMBER.search(spec)):
            raise Unfoldable("format spec")
    _bound_formatting(fmt, len(fields), (*args, *kwargs.values()))
    result = fmt.format(*args, **kwargs)
    _check_len(len(result))
    return result


# --- filters --------------------------------------------------------------------------------


def _s(v: Any) -> str:
    s = to_str(v)
    if s is None:
        raise Unfoldable("too long")
    return s


def _replace(v: Any, old: Any, new: Any, count: Any = None) -> str:
    s, old_s, new_s = _s(v), _s(old), _s(new)
    if count is not None and not isinstance(count, int):
        raise Unfoldable("count")
    n = s.count(old_s) if old_s else len(s) + 1
    if count is not None and count >= 0:
        n = min(n, count)
    _check_len(len(s) + n * max(0, len(new_s) - len(old_s)))
    return s.replace(old_s, new_s, -1 if count is None else count)


def _join(v: Any, d: Any = "") -> str:
    if not isinstance(v, (str, tuple)):
        raise Unfoldable("join")
    sep = _s(d)
    items = [_s(i) for i in v]
    _check_len(sum(map(len, items)) + len(sep) * max(0, len(items) - 1))
    return sep.join(items)


def _center(v: Any, width: Any = 80) -> str:
    if not isinstance(width, int) or width > MAX_WIDTH:
        raise Unfoldable("width")
    return _s(v).center(width)


def _list(v: Any) -> tuple[Any, ...]:
    if isinstance(v, (str, tuple)):
        return tuple(v)
    raise Unfoldable("list")


def _reverse(v: Any) -> Any:
    if isinstance(v, (str, tuple)):
        return v[::-1]
    raise Unfoldable("reverse")


def _first(v: Any) -> Any:
    if isinstance(v, (str, tuple)) and v:
        return v[0]
    raise Unfoldable("first")


def _last(v: Any) -> Any:
    if isinstance(v, (str, tuple)) and v:
        return v[-1]
    raise Unfoldable("last")


def _length(v: Any) -> int:
    if isinstance(v, (str, tuple)):
        return len(v)
    raise Unfoldable("length")


def _format_filter(v: Any, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        raise Unfoldable("format with args and kwargs")
    return printf(_s(v), kwargs or args)


def _sorted(v: Any, *args: Any) -> tuple[Any, ...]:
    if not isinstance(v, (str, tuple)) or args:
        raise Unfoldable("sort")
    return tuple(sorted(v))


def _unique(v: Any, *args: Any) -> tuple[Any, ...]:
    if not isinstance(v, (str, tuple)) or args:
        raise Unfoldable("unique")
    return tuple(dict.fromkeys(v))


def _int(v: Any, default: object = 0, base: Any = 10) -> object:  # Jinja's int filter: ``default`` as given
    if isinstance(v, str) and len(v) > 64:
        raise Unfoldable("int")
    try:
        return int(v) if not isinstance(v, str) else int(v, base)
    except (ValueError, TypeError):
        try:
            return int(float(v))
        except (ValueError, TypeError, OverflowError):
            return default


# name -> folding function over constants
FOLDING_FILTERS: dict[str, Callable[..., Any]] = {
    "lower": lambda v: _s(v).lower(),
    "upper": lambda v: _s(v).upper(),
    "title": lambda v: do_title(_s(v)),
    "capitalize": lambda v: _s(v).capitalize(),
    "trim": lambda v, chars=None: _s(v).strip(chars if isinstance(chars, str) else None),
    "string": _s,
    "safe": lambda v: v,
    "e": lambda v: str(markupsafe.escape(_s(v))),
    "escape": lambda v: str(markupsafe.escape(_s(v))),
    "forceescape": lambda v: str(markupsafe.escape(_s(v))),
    "replace": _replace,
    "join": _join,
    "format": _format_filter,
    "center": _center,
    "list": _list,
    "reverse": _reverse,
    "first": _first,
    "last": _last,
    "length": _length,
    "count": _length,
    "sort": _sorted,
    "unique": _unique,
    "int": _int,
}

# String transforms that cannot insert characters of the template's choosing: applied to
# the caller's data, the result is still only the caller's data (``role_map[m.role|lower]``).
DATA_PRESERVING_FILTERS = frozenset(
    {
        "lower",
        "upper",
        "title",
        "capitalize",
        "trim",
        "string",
        "safe",
        "e",
        "escape",
        "forceescape",
        "striptags",
        "tojson",
        "first",
        "last",
    }
)
DATA_PRESERVING_METHODS = frozenset(
    {
        "lower",
        "upper",
        "title",
        "capitalize",
        "casefold",
        "swapcase",
        "strip",
        "lstrip",
        "rstrip",
        "removeprefix",
        "removesuffix",
    }
)

# Filters whose result, for a non-constant input, is picked from that input.
SELECTING_FILTERS = frozenset({"first", "last", "random", "min", "max", "default", "d"})
# Filters whose result is a list of (some of) the input's elements.
LIST_FILTERS = frozenset(
    {
        "list",
        "sort",
        "unique",
        "reverse",
        "select",
        "reject",
        "selectattr",
        "rejectattr",
        "batch",
        "slice",
        "items",
        "dictsort",
        "groupby",
        "map",
    }
)
# List filters whose result holds the input's elements themselves (not groups of them, not
# attributes picked from them): for a constant input that is all the result can hold.
ELEMENT_LIST_FILTERS = frozenset(
    {"list", "sort", "unique", "reverse", "select", "reject", "selectattr", "rejectattr"}
)
NUMERIC_FILTERS = frozenset({"length", "count", "wordcount", "int", "float", "abs", "round", "sum"})
STRING_FILTERS = frozenset(
    {
        "lower",
        "upper",
        "title",
        "capitalize",
        "trim",
        "string",
        "safe",
        "e",
        "escape",
        "forceescape",
        "replace",
        "join",
        "format",
        "center",
        "indent",
        "truncate",
        "wordwrap",
        "striptags",
        "urlencode",
        "urlize",
        "tojson",
        "filesizeformat",
        "pprint",
        "xmlattr",
    }
)


def picked_attribute(elems: Val, default: Val | None = None) -> Val:
    """What ``attribute=`` of ``map``/``groupby`` picks from elements ``elems`` (name not
    modelled): a dict's values, the items of a tuple, the caller's data; an attribute of
    anything else is an object we cannot follow. Never empty when ``elems`` is not, so that
    a name routed through it is judged, not lost."""
    out = default if default is not None else NOTHING
    if elems.data:
        out = out.join(DATA)
    if elems.seq is not None:
        out = out.join(elems.seq)  # d.key falls back to d['key']
    if elems.rec:
        out = out.join(elems)
    tuples = [v for v in elems.values if isinstance(v, tuple)]
    if tuples:
        out = out.join(elements(from_values(tuples)))  # groupby(0): an item by index
    if elems.num or elems.text or elems.obj or len(tuples) < len(elems.consts):
        out = out.join(OBJ)
    return out


def apply_filter(name: str, value: Val, args: list[Val], kwargs: dict[str, Val]) -> Val:
    """The abstract result of ``value|name(*args, **kwargs)``."""
    nonconst = _nonconst_part(value)
    if name in ("default", "d"):
        return value.join(args[0]) if args else value
    if name in SELECTING_FILTERS:
        fallback = elements(nonconst) if name not in ("default", "d") else nonconst
        if name in ("default", "d") and args:
            fallback = fallback.join(args[0])
    elif name in LIST_FILTERS:
        elems = elements(value)
        if name == "groupby":
            # (grouper, list) tuples: grouper is the looked-up attribute of the elements, not
            # an element ([{'a': name}]|groupby('a')|first).grouper is the name)
            grouper = picked_attribute(elems, kwargs.get("default", args[1] if len(args) > 1 else None))
            elems = Val(data=elems.data, seq=grouper.join(Val(data=elems.data, seq=elems)))
        elif name in ("items", "dictsort", "batch", "slice"):
            # lists of pairs / groups built from the input's elements
            elems = Val(data=elems.data, seq=elems)
        elif name == "map":
            # map(attribute=...) picks an attribute of each element; a mapped filter builds
            # new values
            if "attribute" in kwargs and not args:
                elems = picked_attribute(elems, kwargs.get("default"))
            else:
                elems = Val(data=elems.data).join(TEXT).join(OBJ)
        fallback = Val(data=value.data, seq=elems)
    elif name in NUMERIC_FILTERS:
        fallback = NUM
    elif name in STRING_FILTERS:
        fallback = DATA if name in DATA_PRESERVING_FILTERS and only_data(value) else TEXT
    elif name == "attr":
        fallback = Val(data=value.data, obj=True) if value.data else OBJ.join(TEXT)
    else:  # an application filter we do not know
        fallback = TOP
    folder = FOLDING_FILTERS.get(name)
    if folder is None or kwargs and name not in ("format",):
        if value.exact and name in SELECTING_FILTERS:
            return elements(value)
        if value.exact and name in ELEMENT_LIST_FILTERS:
            return Val(seq=elements(value))
        return fallback
    if name == "format" and kwargs:
        # %(name)s formatting: fold only when every keyword is a single constant
        if all(len(v.consts) == 1 and v.exact for v in kwargs.values()) and not args:
            fixed = {k: next(v.values) for k, v in kwargs.items()}
            return lift([value], lambda v: printf(_s(v), fixed), fallback)
        return fallback
    return lift([value, *args], folder, fallback)


# --- string methods -------------------------------------------------------------------------


def _bounded_width(fn: Callable[..., str]) -> Callable[..., str]:
    def wrapped(s: str, width: Any, *rest: Any) -> str:
        if not isinstance(width, int) or width > MAX_WIDTH:
            raise Unfoldable("width")
        return fn(s, width, *rest)

    return wrapped


STR_METHODS: dict[str, Callable[..., Any]] = {
    "upper": str.upper,
    "lower": str.lower,
    "title": str.title,
    "capitalize": str.capitalize,
    "swapcase": str.swapcase,
    "casefold": str.casefold,
    "strip": str.strip,
    "lstrip": str.lstrip,
    "rstrip": str.rstrip,
    "removeprefix": str.removeprefix,
    "removesuffix": str.removesuffix,
    "replace": lambda s, old, new, count=-1: _replace(s, old, new, None if count == -1 else count),
    "split": lambda s, *a: tuple(s.split(*a)),
    "rsplit": lambda s, *a: tuple(s.rsplit(*a)),
    "splitlines": lambda s, *a: tuple(s.splitlines(*a)),
    "partition": str.partition,
    "rpartition": str.rpartition,
    "join": lambda s, items: _join(items, s),
    "startswith": str.startswith,
    "endswith": str.endswith,
    "find": str.find,
    "rfind": str.rfind,
    "count": str.count,
    "isdigit": str.isdigit,
    "isalpha": str.isalpha,
    "isalnum": str.isalnum,
    "isspace": str.isspace,
    "isupper": str.isupper,
    "islower": str.islower,
    "zfill": _bounded_width(str.zfill),
    "center": _bounded_width(str.center),
    "ljust": _bounded_width(str.ljust),
    "rjust": _bounded_width(str.rjust),
}
BOOL_METHODS = frozenset(
    {"startswith", "endswith", "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower"}
)
NUM_METHODS = frozenset({"find", "rfind", "count", "index", "rindex"})
SPLIT_METHODS = frozenset({"split", "rsplit", "splitlines", "partition", "rpartition"})


def str_method(receiver: Val, method: str, args: list[Val], kwargs: dict[str, Val]) -> Val:
    """The abstract result of ``receiver.method(*args)`` for a string method."""
    if method in BOOL_METHODS:
        fallback = BOOL
    elif method in NUM_METHODS:
        fallback = NUM
    elif method in SPLIT_METHODS:
        fallback = Val(seq=DATA) if only_data(receiver) else Val(seq=TEXT)
    elif method in DATA_PRESERVING_METHODS and only_data(receiver):
        fallback = DATA
    else:
        fallback = TEXT
    fn = STR_METHODS.get(method)
    if fn is None or kwargs:
        return fallback

    def call(s: Any, *a: Any) -> Any:
        if not isinstance(s, str):
            raise Unfoldable("not a string")
        for x in a:
            if not (x is None or isinstance(x, (str, int, tuple))):
                raise Unfoldable("argument type")
        return fn(s, *a)

    return lift([receiver, *args], call, fallback)


def _raise() -> Any:
    raise Unfoldable("type")
