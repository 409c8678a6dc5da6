"""A grammar of pickle programs over the allowlist, for the soundness campaign.

``generate(seed, index)`` builds program ``index`` of campaign ``seed``, the same bytes
every time (a program depends on nothing but those two numbers, so a campaign can be cut
into chunks, resumed, and any finding rebuilt from its index). A program is a file: its
bytes, a realistic file name, the *family* that built it, the production rules used in
order, a *mechanism* (the family plus the choices that matter for grouping findings) and
whether it is **data only**: literals, containers, allowlisted constructors given data
and what a real pickler writes (memo, frames); no trick. A data-only program that the
scanner blocks, and that the real loaders load, is a false alarm.

Families (weights in ``FAMILIES``; docs/soundness.md has the table):

* data: ``data_dumps`` (real ``pickle.dumps``/``joblib.dump``/``numpy.save`` of random
  stdlib, NumPy, pandas and fitted scikit-learn objects), ``data_grammar`` (hand-assembled
  data over allowlisted constructors), ``side_effect_probe`` (allowlisted classes whose
  ``__setstate__``/``__setattr__``/``__init__`` is Python code, given states keyed by the
  names that code touches), ``container_methods`` (SETITEMS, APPENDS, ADDITEMS on
  allowlisted instances);
* calls without a call opcode: ``build_setstate`` (a first BUILD puts ``__setstate__`` in
  an instance's ``__dict__``, the second calls it), ``append_method`` (APPEND/APPENDS
  calling ``append``/``extend`` found on an instance or through Bunch's ``__getattr__``),
  ``additems_method`` (ADDITEMS calling ``add``);
* trusted helpers given computed arguments: ``helper_callable`` (NumPy's random-state and
  bit-generator constructors, ``copyreg._reconstructor`` with computed or odd bases,
  pandas' ``_new_Index``), ``resolver_import`` (``_ufunc_reconstruct`` importing what
  computed names say), ``trampoline_probe`` (any allowlisted callable given one);
* joblib: ``joblib_wrapper`` (file-backed array wrappers built by NEWOBJ, REDUCE, OBJ,
  INST or copyreg, with dict, ``(None, slotstate)`` and padded states), ``joblib_array``
  (inline arrays whose dtype state or padding joblib and pickle.load read differently),
  ``joblib_object_array`` (a nested stream whose GETs read another memo under pickle.load);
* format handling: ``polyglot`` (a pickle at offset 0 of a zip, an HDF5 user block, a tar
  header, a TFLite identifier, before an .npy) and ``joblib_header`` (compressor prefixes
  and the spellings of the legacy ``ZF`` header that joblib accepts);
* what setattr and the builtins make of an instance (``instance_rewiring``: a swapped
  ``__class__``, an aliased ``__dict__``, str()/set()/len() of an instance);
* controls the scanner must block: ``direct_call`` and ``unlisted_import``.

Callables for implicit call sites come from ``implicit_target``/``callable_of``:
``_ufunc_reconstruct`` with literal or computed names (``str("os")``, ``str(b"os",
"ascii")``, rot13 through ``codecs.encode``, a bytearray, the memo), aliases through
allowlisted modules, STACK_GLOBAL on computed names, ``builtins.getattr``, methods of
allowlisted classes by dotted name, reference-only globals (``numpy.memmap``), direct
references. Modifiers apply anywhere: memo round trips (PUT/GET/MEMOIZE, DUP), padding
before the interesting entry of a state (past 64 items), every string opcode of the
protocol, GLOBAL or STACK_GLOBAL, frames (exact, cut between opcodes, ending inside an
opcode, short, long). Payloads are harmless (``true``, a closed port, a missing module):
the oracle stops at the audit event, before the operation, and they would do nothing if
it did not.
"""

from __future__ import annotations

import argparse
import bz2
import codecs
import collections
import datetime
import decimal
import fractions
import functools
import gzip
import importlib
import io
import lzma
import pickle
import pickletools
import random
import re
import struct
import tarfile
import types
import uuid
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from pklbuild import (
    ADDITEMS,
    APPEND,
    APPENDS,
    BUILD,
    DICT,
    DUP,
    EMPTY_DICT,
    EMPTY_LIST,
    EMPTY_SET,
    EMPTY_TUPLE,
    FROZENSET,
    LIST,
    MARK,
    MEMOIZE,
    NEWFALSE,
    NEWOBJ,
    NEWOBJ_EX,
    NEWTRUE,
    NONE,
    OBJ,
    POP,
    REDUCE,
    SETITEM,
    SETITEMS,
    STACK_GLOBAL,
    STOP,
    TUPLE,
    TUPLE1,
    TUPLE2,
    TUPLE3,
    binbytes,
    binget,
    binint,
    binint1,
    binput,
    binstring,
    binunicode,
    binunicode8,
    frame,
    get,
    global_,
    inst,
    long_binget,
    long_binput,
    proto,
    put,
    sbu,
    short_binbytes,
    short_binstring,
    string,
    unicode_line,
)
from soundness_catalog import (
    BUNCH,
    NAMESPACES,
    SINKS,
    UNLISTED_MODULES,
    Allowed,
    Catalog,
    Sink,
    catalog,
    class_methods,
    positional_parameters,
)

from modelsec.pickle.classfacts import class_facts


@dataclass(frozen=True)
class Program:
    seed: int
    index: int
    data: bytes
    filename: str
    family: str
    mechanism: str
    rules: tuple[str, ...]
    data_only: bool

    @property
    def key(self) -> str:
        return f"{self.seed}:{self.index}"


class Builder:
    """Emits opcodes for one program and records which productions built it."""

    def __init__(self, rng: random.Random, cat: Catalog, *, data_only: bool) -> None:
        self.rng = rng
        self.cat = cat
        self.proto = rng.choice((0, 1, 2, 2, 3, 4, 4, 4, 5))
        self.memo = 0  # memo entries written so far
        self.memo_high = 1000  # next index for entries read back by GET
        self.rules: list[str] = []
        self.data_only = data_only

    def rule(self, name: str, *, trick: bool = False) -> None:
        self.rules.append(name)
        if trick:
            self.data_only = False

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    # -- memo ----------------------------------------------------------------------------

    def put(self) -> bytes:
        """Memoise the top of the stack where nothing will read it back (MEMOIZE or a
        low index: MEMOIZE's index depends on emission order, which differs from the
        order values are generated in)."""
        index, self.memo = self.memo, self.memo + 1
        if self.proto >= 4 and self.chance(0.5):
            return MEMOIZE
        if self.proto >= 1:
            return binput(index % 256)
        return put(index)

    def put_for_get(self) -> tuple[bytes, int]:
        """Memoise the top of the stack at an index of its own, to be read back by GET:
        past any index MEMOIZE could reach in these programs."""
        index, self.memo_high = self.memo_high, self.memo_high + 1
        self.memo += 1
        if self.proto == 0:
            return put(index), index
        return long_binput(index), index

    def get(self, index: int) -> bytes:
        if self.proto == 0:
            return get(index)
        return binget(index) if index < 256 else long_binget(index)

    def memo_trick(self, code: bytes, p: float = 0.15) -> bytes:
        """``code`` (one value), sometimes through the memo or DUP: same value, other path."""
        if not self.chance(p):
            return code
        how = self.rng.choice(("put-pop-get", "put", "dup-pop"))
        self.rule(f"memo:{how}")
        if how == "put":
            return code + self.put()
        if how == "dup-pop":
            return code + DUP + POP
        store, index = self.put_for_get()
        return code + store + POP + self.get(index)

    # -- strings and names ---------------------------------------------------------------

    def text(self, value: str) -> bytes:
        """A str literal, in one of the string opcodes this protocol has that CPython
        reads as str (protocol 0: STRING, UNICODE; 1-3: the binary ones; 4+: short ones)."""
        data = value.encode()
        choices = ["unicode_line"]
        if value.isascii():
            choices.append("string")
        if self.proto >= 1:
            choices += ["binunicode", "binunicode"] + (
                ["binstring", "short_binstring"] if value.isascii() else []
            )
        if self.proto >= 4:
            choices += ["sbu"] * 6 + ["binunicode8"]
        how = self.rng.choice(choices)
        if how == "sbu" and len(data) < 256:
            return sbu(value)
        if how == "binunicode8":
            return binunicode8(value)
        if how == "string" and "\n" not in value:
            return string(value)
        if how == "short_binstring" and len(data) < 256:
            return short_binstring(value)
        if how == "binstring":
            return binstring(value)
        if self.proto >= 1 and (how != "unicode_line" or "\n" in value or "\\" in value):
            return binunicode(value)
        if "\n" not in value and "\\" not in value:
            return unicode_line(value)
        return string(value)

    def ref(self, module: str, name: str) -> bytes:
        """A reference to ``module.name``: GLOBAL, or STACK_GLOBAL from two strings."""
        if self.proto >= 4 and self.chance(0.5):
            code = self.text(module) + self.text(name) + STACK_GLOBAL
        else:
            code = global_(module, name)
        return self.memo_trick(code, 0.1)

    def name(self, value: str) -> tuple[bytes, bool]:
        """An expression that evaluates to the str ``value``; (code, computed?)."""
        how = self.rng.choices(
            ("literal", "memo", "str", "str-bytes", "rot13", "bytearray"), (35, 15, 20, 10, 10, 10)
        )[0]
        self.rule(f"name:{how}", trick=how not in ("literal", "memo"))
        if how == "literal":
            return self.text(value), False
        if how == "memo":
            store, index = self.put_for_get()
            return self.text(value) + store + POP + self.get(index), False
        if how == "str":
            return self.ref("builtins", "str") + self.text(value) + TUPLE1 + REDUCE, True
        if how == "str-bytes":
            return self.ref("builtins", "str") + self.bytes_(value.encode()) + self.text(
                "ascii"
            ) + TUPLE2 + REDUCE, True
        if how == "rot13":
            module = self.rng.choice(("codecs", "_codecs"))
            return self.ref(module, "encode") + self.text(codecs.encode(value, "rot13")) + self.text(
                "rot13"
            ) + TUPLE2 + REDUCE, True
        array = self.ref("builtins", "bytearray") + self.bytes_(value.encode()) + TUPLE1 + REDUCE
        return self.ref("builtins", "str") + array + self.text("ascii") + TUPLE2 + REDUCE, True

    # -- data ----------------------------------------------------------------------------

    def bytes_(self, value: bytes) -> bytes:
        if self.proto >= 3:
            return short_binbytes(value) if len(value) < 256 and self.chance(0.7) else binbytes(value)
        # What Python 3 writes for bytes under protocols 0-2.
        return (
            self.ref("_codecs", "encode")
            + self.text(value.decode("latin-1"))
            + self.text("latin1")
            + TUPLE2
            + REDUCE
        )

    def integer(self, value: int) -> bytes:
        if 0 <= value < 256 and self.proto >= 1:
            return binint1(value)
        if -(2**31) <= value < 2**31 and self.proto >= 1:
            return binint(value)
        if self.proto >= 2:
            raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            return b"\x8a" + bytes([len(raw)]) + raw
        return b"I" + str(value).encode() + b"\n"

    def real(self, value: float) -> bytes:
        if self.proto >= 1:
            return b"G" + struct.pack(">d", value)
        return b"F" + repr(value).encode() + b"\n"

    def boolean(self, value: bool) -> bytes:
        if self.proto >= 2:
            return NEWTRUE if value else NEWFALSE
        return b"I01\n" if value else b"I00\n"

    def scalar(self) -> bytes:
        kind = self.rng.choice(("int", "bigint", "float", "str", "bytes", "none", "bool"))
        if kind == "int":
            return self.integer(self.rng.randrange(-1000, 1000))
        if kind == "bigint":
            return self.integer(self.rng.randrange(-(2**70), 2**70))
        if kind == "float":
            return self.real(self.rng.uniform(-1e6, 1e6))
        if kind == "str":
            return self.text(self.word())
        if kind == "bytes":
            return self.bytes_(self.rng.randbytes(self.rng.randrange(0, 12)))
        if kind == "none":
            return NONE
        return self.boolean(self.chance(0.5))

    def word(self) -> str:
        return "".join(
            self.rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(self.rng.randrange(1, 10))
        )

    def key(self) -> bytes:
        return self.text(self.word()) if self.chance(0.8) else self.integer(self.rng.randrange(1000))

    def sequence(self, items: list[bytes], kind: str) -> bytes:
        """A list or tuple of the values ``items`` (each pushes one)."""
        if kind == "tuple":
            if not items:
                return EMPTY_TUPLE if self.proto >= 1 else MARK + TUPLE
            if len(items) <= 3 and self.proto >= 2 and self.chance(0.7):
                return b"".join(items) + (TUPLE1, TUPLE2, TUPLE3)[len(items) - 1]
            return MARK + b"".join(items) + TUPLE
        if self.proto >= 1 and self.chance(0.7):
            head = EMPTY_LIST + self.put() if self.chance(0.5) else EMPTY_LIST
            if not items:
                return head
            if len(items) == 1 and self.chance(0.5):
                return head + items[0] + APPEND
            return head + MARK + b"".join(items) + APPENDS
        return MARK + b"".join(items) + LIST

    def mapping(self, pairs: list[tuple[bytes, bytes]]) -> bytes:
        if self.proto >= 1 and self.chance(0.7):
            head = EMPTY_DICT + self.put() if self.chance(0.5) else EMPTY_DICT
            if not pairs:
                return head
            if self.chance(0.3):
                return head + b"".join(k + v + SETITEM for k, v in pairs)
            return head + MARK + b"".join(k + v for k, v in pairs) + SETITEMS
        return MARK + b"".join(k + v for k, v in pairs) + DICT

    def padding(self) -> int:
        """How many filler entries go before an interesting one (caps are at 64 items)."""
        count = self.rng.choice((0, 0, 0, 0, 1, 3, 63, 64, 65, 66, 100, 130))
        if count:
            self.rule(f"pad:{count}")
        return count

    def state(self, interesting: list[tuple[bytes, bytes]], pad: int | None = None) -> bytes:
        """A dict state: ``pad`` filler entries, then the interesting ones."""
        pad = self.padding() if pad is None else pad
        filler = [(self.text(f"f{i}_{self.word()}"), self.scalar()) for i in range(pad)]
        return self.mapping(filler + interesting)

    def data(self, depth: int = 0) -> bytes:
        """Any data value: scalars, containers, allowlisted constructors given data."""
        kinds = ["scalar"] * 4 + (["list", "tuple", "dict", "set", "ctor", "ctor"] if depth < 3 else [])
        kind = self.rng.choice(kinds)
        if kind == "scalar":
            code = self.scalar()
        elif kind in ("list", "tuple"):
            size = self.rng.choice((0, 1, 2, 3, 5, 65)) if depth == 0 else self.rng.randrange(4)
            code = self.sequence([self.data(depth + 1) for _ in range(size)], kind)
        elif kind == "dict":
            size = self.rng.choice((0, 1, 2, 4, 66)) if depth == 0 else self.rng.randrange(4)
            code = self.mapping([(self.key(), self.data(depth + 1)) for _ in range(size)])
        elif kind == "set":
            items = [self.key() for _ in range(self.rng.randrange(4))]
            if self.proto >= 4 and self.chance(0.6):
                code = (
                    (EMPTY_SET + MARK + b"".join(items) + ADDITEMS)
                    if self.chance(0.5)
                    else (MARK + b"".join(items) + FROZENSET)
                )
            else:
                code = (
                    self.ref("builtins", self.rng.choice(("set", "frozenset")))
                    + self.sequence([self.sequence(items, "list")], "tuple")
                    + REDUCE
                )
        else:
            code = self.constructed(depth)
        return self.memo_trick(code, 0.1)

    def constructed(self, depth: int) -> bytes:
        """An allowlisted constructor called with data, as real pickles do."""
        kind = self.rng.choice(
            (
                "ordereddict",
                "deque",
                "counter",
                "complex",
                "bytearray",
                "slice",
                "range",
                "decimal",
                "fraction",
                "timedelta",
                "namespace",
                "dtype",
            )
        )
        self.rule(f"ctor:{kind}")
        t = lambda *items: self.sequence(list(items), "tuple")  # noqa: E731
        if kind == "ordereddict":
            pairs = [
                self.sequence([self.key(), self.data(depth + 1)], "tuple")
                for _ in range(self.rng.randrange(3))
            ]
            return self.ref("collections", "OrderedDict") + t(self.sequence(pairs, "list")) + REDUCE
        if kind == "deque":
            head = self.ref("collections", "deque") + self.sequence([], "tuple") + REDUCE
            items = [self.data(depth + 1) for _ in range(self.rng.randrange(3))]
            return head + (MARK + b"".join(items) + APPENDS if items else b"")
        if kind == "counter":
            pairs = [(self.key(), self.integer(self.rng.randrange(9))) for _ in range(self.rng.randrange(3))]
            return self.ref("collections", "Counter") + t(self.mapping(pairs)) + REDUCE
        if kind == "complex":
            return (
                self.ref("builtins", "complex")
                + t(self.real(self.rng.random()), self.real(self.rng.random()))
                + REDUCE
            )
        if kind == "bytearray":
            return self.ref("builtins", "bytearray") + t(self.bytes_(self.rng.randbytes(4))) + REDUCE
        if kind in ("slice", "range"):
            return (
                self.ref("builtins", kind)
                + t(*(self.integer(self.rng.randrange(1, 9)) for _ in range(3)))
                + REDUCE
            )
        if kind == "decimal":
            return self.ref("decimal", "Decimal") + t(self.text(str(self.rng.randrange(999)) + ".5")) + REDUCE
        if kind == "fraction":
            return self.ref("fractions", "Fraction") + t(self.text(f"{self.rng.randrange(1, 9)}/7")) + REDUCE
        if kind == "timedelta":
            return (
                self.ref("datetime", "timedelta")
                + t(*(self.integer(self.rng.randrange(99)) for _ in range(3)))
                + REDUCE
            )
        if kind == "dtype":
            typestr = self.rng.choice(("f8", "f4", "i8", "i4", "u1", "b1", "c16"))
            dtype = (
                self.ref("numpy", "dtype")
                + t(self.text(typestr), self.boolean(False), self.boolean(True))
                + REDUCE
            )
            order = "|" if typestr in ("u1", "b1") else "<"
            state = t(
                self.integer(3),
                self.text(order),
                NONE,
                NONE,
                NONE,
                self.integer(-1),
                self.integer(-1),
                self.integer(0),
            )
            return dtype + state + BUILD
        module, name = self.rng.choice(NAMESPACES).rsplit(".", 1)
        pairs = [(self.text(self.word()), self.data(depth + 1)) for _ in range(self.rng.randrange(3))]
        how = self.rng.choice(("REDUCE", "NEWOBJ")) if self.proto >= 2 else "REDUCE"
        return (
            self.ref(module, name)
            + self.sequence([], "tuple")
            + (REDUCE if how == "REDUCE" else NEWOBJ)
            + self.mapping(pairs)
            + BUILD
        )

    # -- instances -----------------------------------------------------------------------

    def construct(self, cls: Allowed, args: list[bytes], *, allow_init: bool = True) -> bytes:
        """An instance of ``cls``: REDUCE, NEWOBJ(_EX), OBJ, INST or a copyreg helper."""
        ways = ["NEWOBJ", "newobj_helper"] if self.proto >= 2 else ["newobj_helper"]
        if allow_init:
            ways += ["REDUCE", "REDUCE", "OBJ", "INST"]
        if self.proto >= 4:
            ways.append("NEWOBJ_EX")
        if cls.python_class and not args:
            ways.append("reconstructor")
        how = self.rng.choice(ways)
        self.rule(f"construct:{how}")
        if how == "INST":
            return MARK + b"".join(args) + inst(cls.module, cls.name)
        if how == "OBJ":
            return MARK + self.ref(cls.module, cls.name) + b"".join(args) + OBJ
        if how == "reconstructor":
            return (
                self.ref("copyreg", "_reconstructor")
                + self.sequence(
                    [self.ref(cls.module, cls.name), self.ref("builtins", "object"), NONE], "tuple"
                )
                + REDUCE
            )
        if how == "newobj_helper":
            return (
                self.ref("copyreg", "__newobj__")
                + self.sequence([self.ref(cls.module, cls.name), *args], "tuple")
                + REDUCE
            )
        code = self.ref(cls.module, cls.name) + self.sequence(args, "tuple")
        if how == "NEWOBJ_EX":
            return code + EMPTY_DICT + NEWOBJ_EX
        return code + (NEWOBJ if how == "NEWOBJ" else REDUCE)

    def open_instance(self) -> tuple[bytes, str]:
        """An instance whose ``__dict__`` a BUILD dict state writes into; (code, class)."""
        pick = self.rng.random()
        if pick < 0.3:
            path = NAMESPACES[0]
        elif pick < 0.5:
            path = NAMESPACES[1]
        else:
            path = self.rng.choice(self.cat.open_dict).path
        cls = self.cat.find(path)
        assert cls is not None, path
        self.rule(f"instance:{path}")
        return self.memo_trick(self.construct(cls, []), 0.2), path

    def allowlisted_value(self, hint: str) -> bytes:
        """A value for an attribute named ``hint``: an allowlisted class whose name matches
        (``_listener_handle`` -> ``ListenerHandle``) built from typed data, else data."""
        wanted = hint.replace("_", "").lower()
        matches = [c for c in self.cat.classes if wanted and c.name.rsplit(".", 1)[-1].lower() == wanted]
        if not matches or self.chance(0.3):
            return self.data(1)
        cls = self.rng.choice(matches)
        params = self.cat.signatures.get(cls.path, ())
        self.rule(f"value:{cls.path}")
        return self.construct(cls, [self.typed(annotation) for _, annotation in params])

    def typed(self, annotation: str) -> bytes:
        kind = annotation.lower()
        if "str" in kind:
            return self.text(self.rng.choice(("modelsec-oracle.sock", self.word())))
        if "bytes" in kind:
            return self.bytes_(self.rng.randbytes(8))
        if "int" in kind:
            return self.integer(self.rng.randrange(9))
        if "float" in kind:
            return self.real(self.rng.random())
        if "list" in kind:
            return self.sequence([], "list")
        if "dict" in kind:
            return self.mapping([])
        return self.data(1)

    # -- dangerous callables -------------------------------------------------------------

    def sink(self, *styles: str) -> Sink:
        sink = self.rng.choice([s for s in SINKS if s.style in styles])
        self.rule(f"sink:{sink.path}")
        return sink

    def callable_of(self, sink: Sink) -> tuple[bytes, str]:
        """Code that pushes ``sink`` and the name of how it got there."""
        aliases = [
            a for a in self.cat.aliases if a.sink == sink and (a.module, a.name) != (sink.module, sink.name)
        ]
        sources = (
            ["ufunc_reconstruct"] * 6
            + ["stack_global_computed", "getattr", "direct"]
            + (["alias"] * 2 if aliases else [])
        )
        how = self.rng.choice(sources)
        if how == "ufunc_reconstruct":
            module, module_computed = self.name(sink.module)
            name, name_computed = self.name(sink.name)
            holder = self.rng.choice(("numpy.core", "numpy.core", "numpy._core"))
            code = self.ref(holder, "_ufunc_reconstruct") + module + name + TUPLE2 + REDUCE
            how = "ufunc_reconstruct/" + ("computed" if module_computed or name_computed else "literal")
        elif how == "stack_global_computed":
            module, _ = self.name(sink.module)
            name, _ = self.name(sink.name)
            code = module + name + STACK_GLOBAL
        elif how == "getattr":
            module_code, _ = self.callable_of_module(sink.module)
            name, _ = self.name(sink.name)
            code = self.ref("builtins", "getattr") + module_code + name + TUPLE2 + REDUCE
        elif how == "alias":
            alias = self.rng.choice(aliases)
            code = self.ref(alias.module, alias.name)
            self.rule(f"alias:{alias.module}.{alias.name}")
        else:
            code = self.ref(sink.module, sink.name)
        self.rule(f"callable:{how}", trick=True)
        return self.memo_trick(code, 0.2), how

    def callable_of_module(self, module: str) -> tuple[bytes, bool]:
        name, computed = self.name(module)
        return self.ref("numpy.core", "_ufunc_reconstruct") + self.name("builtins")[0] + self.text(
            "__import__"
        ) + TUPLE2 + REDUCE + name + TUPLE1 + REDUCE, computed

    def implicit_target(self, style: str) -> tuple[bytes, str, bytes]:
        """What an implicit call site (BUILD's __setstate__, append, extend, add) gets:
        (callable code, its source, the argument code). Mostly a sink reached some way;
        sometimes a reference-only global of the allowlist (fine to name, not to call:
        ``numpy.memmap("weights.dat")`` opens a file for writing)."""
        if style == "one" and self.chance(0.1):
            return self.method_path()
        if self.cat.references and style == "one" and self.chance(0.25):
            risky = self.cat.risky_references
            ref = self.rng.choice(risky if risky and self.chance(0.6) else self.cat.references)
            self.rule(f"callable:reference-only:{ref.path}", trick=True)
            argument = self.text("weights.dat") if self.chance(0.7) else self.data(1)
            return self.memo_trick(self.ref(ref.module, ref.name), 0.2), "reference_only", argument
        sink = self.sink(style)
        code, source = self.callable_of(sink)
        return code, source, self.payload(sink)

    def method_path(self) -> tuple[bytes, str, bytes]:
        """A method of an allowlisted class, reached by a dotted GLOBAL or STACK_GLOBAL name
        (``pandas.core.frame`` + ``DataFrame.to_clipboard``) or ``builtins.getattr``, to be
        called with an instance of that class as ``self``."""
        cls = self.rng.choice(self.cat.classes)
        methods = class_methods(cls.path)
        if not methods:
            return self.method_path()
        method = self.rng.choice(methods)
        how = self.rng.choice(("dotted", "dotted", "getattr"))
        self.rule(f"callable:method:{cls.path}.{method}:{how}", trick=True)
        if how == "dotted":
            code = self.ref(cls.module, f"{cls.name}.{method}")
        else:
            code = (
                self.ref("builtins", "getattr")
                + self.ref(cls.module, cls.name)
                + self.text(method)
                + TUPLE2
                + REDUCE
            )
        return code, f"method_path/{how}", self.construct(cls, [])

    def payload(self, sink: Sink) -> bytes:
        value = sink.argument
        if isinstance(value, tuple):
            return self.sequence([self.text(value[0]), self.integer(value[1])], "tuple")
        return self.text(str(value))

    # -- finishing -----------------------------------------------------------------------

    def finish(self, body: bytes) -> bytes:
        """PROTO (protocols 2+), the body, STOP; sometimes framed, rightly or not."""
        head = proto(self.proto) if self.proto >= 2 else b""
        rest = body + STOP
        if self.proto >= 4 and self.chance(0.3):
            rest = self.framed(rest)
        return head + rest

    def framed(self, rest: bytes) -> bytes:
        """``rest`` in FRAMEs: as picklers write them (one frame, or frames cut between
        opcodes), or not: a frame ending inside an opcode (the C unpickler reads on, the
        Python one refuses), a frame shorter or longer than what follows."""
        how = self.rng.choice(("exact", "exact", "exact", "boundaries", "straddle", "short", "long"))
        self.rule(f"frame:{how}", trick=how not in ("exact", "boundaries"))
        starts = [position for _, _, position in pickletools.genops(rest)]
        if how == "exact" or len(starts) < 3:
            return frame(len(rest)) + rest
        if how == "boundaries":
            cut = self.rng.choice(starts[1:])
            return frame(cut) + rest[:cut] + frame(len(rest) - cut) + rest[cut:]
        if how == "straddle":
            inside = [p + 1 for p, nxt in zip(starts, starts[1:]) if nxt - p > 1]
            cut = self.rng.choice(inside) if inside else starts[1]
            return frame(cut) + rest
        if how == "short":
            return frame(self.rng.choice(starts[1:])) + rest
        return frame(len(rest) + self.rng.randrange(1, 9)) + rest

    def filename(self, *choices: str) -> str:
        return self.rng.choice(
            choices or ("model.pkl", "model.pkl", "model.joblib", "pytorch_model.bin", "data.pickle")
        )


# -- families ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    data: bytes
    filename: str
    mechanism: str


def fam_data_grammar(b: Builder) -> Built:
    return Built(b.finish(b.data()), b.filename(), "data_grammar")


def fam_side_effect_probe(b: Builder) -> Built:
    # joblib's file wrappers are joblib_wrapper's subject: the file they name is the point.
    probes = [p for p in b.cat.probes if p.cls.path not in JOBLIB_FILE_WRAPPERS]
    probe = b.rng.choices(probes, [p.weight for p in probes])[0]
    cls = probe.cls
    # A probe of a method the class facts do not prove safe (code the generator could not
    # read as pure, or reviewed only under a condition) is not data: the scanner may block it.
    facts = class_facts(cls.path)
    fact = facts.methods.get(probe.method) if facts is not None else None
    b.rule(f"probe:{cls.path}.{probe.method}", trick=fact is None or not fact.safe)
    keys = [k for k in probe.keys if b.chance(0.7)] or list(probe.keys[:1])
    if facts is not None and any(k in _callable_attribute_names(cls) for k in keys):
        b.rule("plants a callable under a method's name", trick=True)
    if probe.method == "__init__":
        args = [b.typed(annotation) for _, annotation in probe.init_params]
        body = b.construct(cls, args)
        if b.chance(0.5):
            body += b.state([(b.text(k), b.allowlisted_value(k)) for k in keys], pad=0) + BUILD
    else:
        body = b.construct(cls, [], allow_init=False)
        state = b.state([(b.text(k), b.allowlisted_value(k)) for k in keys], pad=0)
        if probe.method == "__setattr__":
            state = b.sequence([NONE, state], "tuple")  # (None, slotstate): setattr per key
        body += state + BUILD
    return Built(b.finish(body), b.filename(), f"side_effect:{cls.path}.{probe.method}")


@functools.cache
def _callable_attribute_names(cls: Allowed) -> frozenset[str]:
    """Names the class defines as methods (an instance attribute of that name shadows one)."""
    real: object = importlib.import_module(cls.module)
    for part in cls.name.split("."):
        real = getattr(real, part, None)
    if not isinstance(real, type):
        return frozenset()
    return frozenset(name for klass in real.__mro__ for name, value in vars(klass).items() if callable(value))


def _planting_state(b: Builder, key: str, fn: bytes) -> bytes:
    """A BUILD state that puts ``key`` = ``fn`` into an instance's ``__dict__``: a dict
    (updated into it), ``(None, slots)`` (one setattr per key) or ``(dict, slots)``."""
    form = b.rng.choice(("dict", "dict", "slotstate", "dict+slotstate"))
    b.rule(f"state:{form}", trick=True)
    entry = [(b.text(key), fn)]
    if form == "dict":
        return b.state(entry)
    if form == "slotstate":
        return b.sequence([NONE, b.state(entry)], "tuple")
    return b.sequence([b.state([]), b.state(entry)], "tuple")


def fam_build_setstate(b: Builder) -> Built:
    instance, _ = b.open_instance()
    fn, source, argument = b.implicit_target("one")
    body = instance + _planting_state(b, "__setstate__", fn) + BUILD + argument + BUILD
    return Built(b.finish(body), b.filename(), f"build_setstate:{source}")


def fam_append_method(b: Builder) -> Built:
    method = b.rng.choice(("append", "extend"))
    fn, source, argument = b.implicit_target("one" if method == "append" else "list")
    if b.chance(0.25):
        bunch = b.cat.find(BUNCH)
        assert bunch is not None
        holder = "bunch"
        body = b.construct(bunch, []) + b.text(method) + fn + SETITEM
        b.rule("holder:bunch-getattr", trick=True)
    else:
        holder = "instance-dict"
        instance, _ = b.open_instance()
        body = instance + _planting_state(b, method, fn) + BUILD
        b.rule("holder:instance-dict", trick=True)
    if method == "append" and b.chance(0.5):
        body += argument + APPEND
    else:
        body += MARK + argument + APPENDS
    return Built(b.finish(body), b.filename(), f"append:{method}:{holder}:{source}")


def fam_additems_method(b: Builder) -> Built:
    fn, source, argument = b.implicit_target("one")
    instance, _ = b.open_instance()
    b.rule("holder:instance-dict", trick=True)
    body = instance + _planting_state(b, "add", fn) + BUILD + MARK + argument + ADDITEMS
    return Built(b.finish(body), b.filename(), f"additems:{source}")


def fam_helper_callable(b: Builder) -> Built:
    helper = b.rng.choice(
        (
            "randomstate_ctor",
            "generator_ctor",
            "bit_generator_ctor",
            "reconstructor",
            "reconstructor_odd_base",
            "new_index",
        )
    )
    t = lambda *items: b.sequence(list(items), "tuple")  # noqa: E731
    if helper in ("randomstate_ctor", "generator_ctor"):
        sink = b.sink("one")
        fn, source = b.callable_of(sink)
        name = "__randomstate_ctor" if helper == "randomstate_ctor" else "__generator_ctor"
        body = b.ref("numpy.random._pickle", name) + t(b.payload(sink), fn) + REDUCE
    elif helper == "bit_generator_ctor":
        sink = b.sink("none")
        fn, source = b.callable_of(sink)
        body = b.ref("numpy.random._pickle", "__bit_generator_ctor") + t(fn) + REDUCE
    elif helper == "reconstructor":
        sink = b.sink("none")
        fn, source = b.callable_of(sink)
        store, index = b.put_for_get()
        body = b.ref("copyreg", "_reconstructor") + t(fn + store, b.get(index), b.integer(2)) + REDUCE
    elif helper == "reconstructor_odd_base":
        # _reconstructor(cls, base, state) runs base.__new__(cls, state) and
        # base.__init__(obj, state): an allowlisted base other than the class's own.
        cls, base = b.rng.choice(b.cat.python_classes), b.rng.choice(b.cat.classes)
        source = f"base:{base.path}"
        b.rule(f"reconstructor:{cls.path}:{base.path}")
        body = (
            b.ref("copyreg", "_reconstructor")
            + t(b.ref(cls.module, cls.name), b.ref(base.module, base.name), b.data(1))
            + REDUCE
        )
    else:
        sink = b.sink("none")
        fn, source = b.callable_of(sink)
        body = b.ref("pandas.core.indexes.base", "_new_Index") + t(fn, b.mapping([])) + REDUCE
    b.rule(f"helper:{helper}", trick=True)
    return Built(b.finish(body), b.filename(), f"helper:{helper}:{source}")


# Builtins whose call runs the argument's own class code (its __repr__, __hash__, __len__ ...),
# which reads names an instance __dict__ can shadow; set/frozenset take a list of instances.
DUNDER_BUILTINS = ("str", "str", "set", "frozenset", "int", "float", "complex", "bool", "len", "bytes")


def fam_instance_rewiring(b: Builder) -> Built:
    """What setattr and the builtins make of an instance the stream built (review of the
    allowlist after the first campaign, docs/pickle.md):

    * ``class_swap``: a slot state's ``__class__`` turns the instance into another class,
      whose own ``__setstate__`` (or append, extend, add) then calls a method name the
      stream planted in the ``__dict__`` beforehand;
    * ``dict_alias``: a slot state's ``__dict__`` makes a memoised dict the instance's
      attributes, and a SETITEM on that dict plants ``__setstate__``/append/extend/add later;
    * ``builtin_dunder``: str(), set(), int(), len() ... of an instance run its class's
      code, which calls methods by names the ``__dict__`` can shadow. Without a planted
      callable this is data (the false-alarm side: plain objects must pass)."""
    kind = b.rng.choice(("class_swap", "class_swap", "dict_alias", "dict_alias", "builtin_dunder"))
    if kind == "class_swap":
        instance, _ = b.open_instance()
        target = b.rng.choice(b.cat.python_classes)
        names = sorted(
            (_callable_attribute_names(target) - {"__class__", "__init__", "__new__"})
            | {"__setstate__", "append", "extend", "add"}
        )
        name = b.rng.choice(names)
        fn, source, argument = b.implicit_target("one")
        swap = b.sequence(
            [NONE, b.state([(b.text("__class__"), b.ref(target.module, target.name))])], "tuple"
        )
        b.rule(f"rewire:class_swap:{target.path}:{name}", trick=True)
        trigger = b.rng.choice(("BUILD", "BUILD", "APPEND", "ADDITEMS"))
        body = instance + _planting_state(b, name, fn) + BUILD + swap + BUILD
        body += {
            "BUILD": argument + BUILD,
            "APPEND": argument + APPEND,
            "ADDITEMS": MARK + argument + ADDITEMS,
        }[trigger]
        return Built(b.finish(body), b.filename(), f"rewire:class_swap:{trigger}:{source}")
    if kind == "dict_alias":
        instance, _ = b.open_instance()
        method = b.rng.choice(("__setstate__", "append", "extend", "add"))
        fn, source, argument = b.implicit_target("list" if method == "extend" else "one")
        keep_instance, instance_index = b.put_for_get()
        keep_dict, dict_index = b.put_for_get()
        alias = b.sequence([NONE, b.state([(b.text("__dict__"), b.mapping([]) + keep_dict)])], "tuple")
        b.rule(f"rewire:dict_alias:{method}", trick=True)
        body = instance + keep_instance + alias + BUILD + POP
        body += b.get(dict_index) + b.text(method) + fn + SETITEM + POP + b.get(instance_index)
        body += {
            "__setstate__": argument + BUILD,
            "append": argument + APPEND,
            "extend": MARK + argument + APPENDS,
            "add": MARK + argument + ADDITEMS,
        }[method]
        return Built(b.finish(body), b.filename(), f"rewire:dict_alias:{method}:{source}")
    builtin = b.rng.choice(DUNDER_BUILTINS)
    planted = b.chance(0.5)
    # The plain side builds instances the way picklers do (__new__ and a state, no
    # constructor call), of Python classes other than joblib's array wrappers: compiled
    # classes' own methods, constructors called with no arguments and the wrappers' raw array
    # bytes are other families' subjects (and known, deliberate false alarms, soundness.md).
    plain_classes = [c for c in b.cat.open_dict if c.python_class and not c.module.startswith("joblib")]
    cls = b.rng.choice(b.cat.open_dict if planted else plain_classes)
    instance = b.construct(cls, [], allow_init=planted)
    if planted:
        names = sorted(_callable_attribute_names(cls) - {"__class__", "__init__", "__new__"}) or ["keys"]
        name = b.rng.choice(names)
        fn, source, _ = b.implicit_target("one")
        b.rule(f"rewire:builtin_dunder:{builtin}:{cls.path}:{name}", trick=True)
        instance += _planting_state(b, name, fn) + BUILD
    else:
        source = "plain"
        b.rule(f"rewire:builtin_dunder:{builtin}:{cls.path}:plain")
        # Literal attributes: an object holding a class or function reference is not plain
        # data to the scanner whatever its name (a deliberate false alarm, docs/pickle.md).
        instance += b.state([(b.text(b.word()), b.scalar())]) + BUILD
    if builtin in ("set", "frozenset"):
        instance = b.sequence([instance], "list")
    body = b.ref("builtins", builtin) + b.sequence([instance], "tuple") + REDUCE
    return Built(b.finish(body), b.filename(), f"rewire:builtin_dunder:{builtin}:{source}")


CONTAINER_OPCODES = {"__setitem__": "SETITEMS", "extend": "APPENDS", "append": "APPEND", "add": "ADDITEMS"}


def fam_container_methods(b: Builder) -> Built:
    """SETITEM(S), APPEND(S) and ADDITEMS on an instance of an allowlisted class call its
    ``__setitem__``, ``extend``/``append`` or ``add``: what real pickles do for dict, list
    and set subclasses (data only), and what any other class with such a method gets."""
    method = b.rng.choice(tuple(CONTAINER_OPCODES))
    candidates = [c for c in b.cat.classes if method in class_methods(c.path)]
    cls = b.rng.choice(candidates)
    opcode = CONTAINER_OPCODES[method]
    builtin_base = b.cat.container_kind(cls.path)
    b.rule(f"container:{cls.path}.{method}:{opcode}", trick=builtin_base is None)
    body = b.construct(cls, [])
    items = [b.data(2) for _ in range(b.rng.randrange(1, 4))]
    if opcode == "SETITEMS":
        pairs = [b.key() + item for item in items]
        body += SETITEM.join(pairs) + SETITEM if b.chance(0.3) else MARK + b"".join(pairs) + SETITEMS
    elif opcode == "APPENDS":
        body += MARK + b"".join(items) + APPENDS
    elif opcode == "APPEND":
        body += items[0] + APPEND
    else:
        body += MARK + b"".join(b.key() for _ in items) + ADDITEMS
    return Built(b.finish(body), b.filename(), f"container:{cls.path}.{method}")


# Audited on entry whatever the argument, and in a module every loader has imported
# already (resolving it raises no event of its own).
TRAMPOLINE_SINK = Sink("shutil", "rmtree", "one")


def fam_trampoline_probe(b: Builder) -> Built:
    """Any allowlisted callable given a dangerous callable among data arguments: if it
    calls that argument (a metric function, a factory, a bit-generator constructor) it is
    a trampoline and needs a contract. The callable is computed, or reference-only."""
    candidates = [a for a in b.cat.allowed if positional_parameters(a.path)]
    target = b.rng.choice(candidates)
    params = positional_parameters(target.path)[:6]
    slot = b.rng.randrange(len(params))
    if b.cat.risky_references and b.chance(0.3):
        ref = b.rng.choice(b.cat.risky_references)
        fn, source = b.ref(ref.module, ref.name), "reference_only"
    else:
        fn, source = b.callable_of(TRAMPOLINE_SINK)
    b.rule(f"trampoline:{target.path}:{params[slot]}", trick=True)
    args = [fn if i == slot else b.data(2) for i in range(len(params))]
    body = b.ref(target.module, target.name) + b.sequence(args, "tuple") + REDUCE
    return Built(b.finish(body), b.filename(), f"trampoline:{target.path}:{source}")


def fam_resolver_import(b: Builder) -> Built:
    module = b.rng.choice(UNLISTED_MODULES)
    module_code, module_computed = b.name(module)
    name_code, name_computed = b.name(b.rng.choice(("__name__", "__doc__", "x")))
    holder = b.rng.choice(("numpy.core", "numpy._core"))
    b.rule(f"resolver:{holder}._ufunc_reconstruct", trick=True)
    body = b.sequence(
        [b.ref(holder, "_ufunc_reconstruct") + module_code + name_code + TUPLE2 + REDUCE], "list"
    )
    return Built(
        b.finish(body),
        b.filename(),
        f"resolver_import:{'computed' if module_computed or name_computed else 'literal'}",
    )


def fam_direct_call(b: Builder) -> Built:
    sink = b.sink("one")
    fn, source = b.callable_of(sink)
    how = b.rng.choice(("REDUCE", "NEWOBJ", "OBJ"))
    b.rule(f"call:{how}")
    if how == "OBJ":
        body = MARK + fn + b.payload(sink) + OBJ
    else:
        body = fn + b.sequence([b.payload(sink)], "tuple") + (REDUCE if how == "REDUCE" else NEWOBJ)
    return Built(b.finish(body), b.filename(), f"direct_call:{source}")


def fam_unlisted_import(b: Builder) -> Built:
    module = b.rng.choice(UNLISTED_MODULES)
    how = b.rng.choice(("GLOBAL", "STACK_GLOBAL", "INST"))
    b.rule(f"import:{how}", trick=True)
    if how == "GLOBAL":
        body = global_(module, "__name__")
    elif how == "STACK_GLOBAL":
        body = b.text(module) + b.text("__name__") + STACK_GLOBAL
    else:
        body = MARK + inst(module, "__name__")
    return Built(b.finish(body), b.filename(), f"unlisted_import:{how}")


JOBLIB_FILE_WRAPPERS = (
    "joblib.numpy_pickle.NDArrayWrapper",
    "joblib.numpy_pickle_compat.NDArrayWrapper",
    "joblib.numpy_pickle.ZNDArrayWrapper",
    "joblib.numpy_pickle_compat.ZNDArrayWrapper",
)


def fam_joblib_wrapper(b: Builder) -> Built:
    cls = b.cat.find(b.rng.choice(JOBLIB_FILE_WRAPPERS))
    assert cls is not None
    target = b.rng.choice(("/etc/hostname", "../../../../../../etc/hostname", "arr.npy"))
    b.rule(f"wrapper:{cls.path}", trick=True)
    b.rule(f"filename:{'absolute' if target.startswith('/') else 'parent' if '..' in target else 'relative'}")
    subclass = b.ref("numpy", "ndarray")
    use_init = b.chance(0.3)
    if use_init:
        args = (
            [b.text(target), subclass] if "ZND" not in cls.name else [b.text(target), b.mapping([]), subclass]
        )
        body = b.construct(cls, args)
        fields: list[tuple[bytes, bytes]] = []
    else:
        body = b.construct(cls, [], allow_init=False)
        fields = [(b.text("filename"), b.text(target)), (b.text("subclass"), b.ref("numpy", "ndarray"))]
        if "ZND" in cls.name:
            fields.append((b.text("init_args"), b.sequence([], "tuple")))
    form = b.rng.choice(("dict", "slotstate", "dict+slotstate"))
    b.rule(f"state:{form}")
    pad = b.padding()
    state = b.state(fields, pad)
    if form == "slotstate":
        state = b.sequence([NONE, state], "tuple")
    elif form == "dict+slotstate":
        state = b.sequence([b.state([], pad=0), state], "tuple")
    body += state + BUILD
    how = next(r for r in b.rules if r.startswith("construct:")).split(":")[1]
    size = "past-64" if pad + len(fields) > 64 else "small"
    return Built(
        b.finish(body), b.filename("model.pkl", "model.joblib"), f"joblib_wrapper:{how}:{form}:{size}"
    )


def fam_joblib_array(b: Builder) -> Built:
    """joblib's inline NumpyArrayWrapper: raw array bytes follow its BUILD, and joblib
    resumes unpickling after them, while ``pickle.load`` reads them as opcodes.

    Variants: ``consistent`` (what joblib writes; data only), ``elsize-larger`` and
    ``elsize-smaller`` (a dtype state claims an element size the type ignores: an analyser
    that trusts it resumes elsewhere than joblib does), ``pad-payload`` (a padding length
    that is an opcode, and a pickle in the padding joblib skips) and ``data-payload``
    (array bytes that are a pickle)."""
    b.proto = max(b.proto, 2)
    variant = b.rng.choice(
        ("consistent", "consistent", "elsize-larger", "elsize-smaller", "pad-payload", "data-payload")
    )
    hidden = global_("os", "system") + MARK + string("true") + TUPLE + REDUCE + POP
    typestr, itemsize = b.rng.choice((("f8", 8), ("i4", 4), ("c16", 16), ("f2", 2), ("i8", 8), ("u1", 1)))
    count, claim = b.rng.randrange(1, 9), -1
    if variant == "elsize-larger":
        claim = itemsize * b.rng.choice((2, 3, 4))
        count = max(count, -(-(len(hidden) + 2) // (claim - itemsize)))
    elif variant == "elsize-smaller":
        typestr, itemsize = b.rng.choice((("f8", 8), ("c16", 16), ("i8", 8)))
        claim = b.rng.choice((1, itemsize // 2))
        count = max(count, -(-6 // (itemsize - claim)))
    elif variant == "data-payload":
        typestr, itemsize, count = "u1", 1, len(hidden) + 1
    padded = variant == "pad-payload" or (variant != "data-payload" and b.chance(0.5))
    b.rule(
        f"array:{variant}:{typestr}x{count}:elsize={claim}:{'padded' if padded else 'unpadded'}",
        trick=variant != "consistent",
    )
    t = lambda *items: b.sequence(list(items), "tuple")  # noqa: E731
    order = "|" if typestr == "u1" else "<"
    dtype = b.ref("numpy", "dtype") + t(b.text(typestr), b.boolean(False), b.boolean(True)) + REDUCE
    dtype += (
        t(b.integer(3), b.text(order), NONE, NONE, NONE, b.integer(claim), b.integer(-1), b.integer(0))
        + BUILD
    )
    fields = [
        (b.text("subclass"), b.ref("numpy", "ndarray")),
        (b.text("shape"), t(b.integer(count))),
        (b.text("order"), b.text("C")),
        (b.text("dtype"), dtype),
        (b.text("allow_mmap"), b.boolean(False)),
    ]
    if padded:
        fields.append((b.text("numpy_array_alignment_bytes"), b.integer(16)))
    wrapper = b.cat.find("joblib.numpy_pickle.NumpyArrayWrapper")
    assert wrapper is not None
    prefix = proto(b.proto) + b.construct(wrapper, [], allow_init=False) + b.mapping(fields) + BUILD
    pad = b""
    if variant == "pad-payload":
        # Padding length 78 is NONE to pickle.load, which then runs the pickle inside it.
        inside = POP + hidden + STOP
        pad = NONE + inside + b"\xff" * (ord(NONE) - len(inside))
    elif padded:
        width = (-(len(prefix) + 1)) % 16
        pad = bytes([width]) + b"\xff" * width
    real = count * itemsize
    array = bytearray(b"\xff" * real)  # 0xff is no opcode: a parse that starts here stops
    tail = STOP
    if variant == "elsize-larger":
        # joblib runs the hidden call; an analyser skipping count * claim bytes jumps over it.
        tail = hidden + _nop_fill(count * claim - real - len(hidden)) + STOP
    elif variant == "elsize-smaller":
        # An analyser resuming at count * claim reads a BINBYTES that swallows the call.
        at = count * claim
        array[at : at + 5] = b"B" + struct.pack("<I", real - at - 5 + len(hidden))
        tail = hidden + STOP
    elif variant == "data-payload":
        array[:] = hidden + STOP
    return Built(
        prefix + pad + bytes(array) + tail, b.filename("model.joblib", "model.pkl"), f"joblib_array:{variant}"
    )


def fam_joblib_object_array(b: Builder) -> Built:
    """joblib writes an object array as a second pickle stream after the wrapper's BUILD.
    joblib.load reads it with a fresh unpickler (its own memo); pickle.load reads it as
    the rest of the first stream, with the first stream's memo. One GET, two values: here
    joblib sees ``builtins.list("true")`` and pickle.load sees ``os.system("true")``."""
    b.proto = 4
    b.rule("array:object-memo", trick=True)
    wrapper = global_("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ
    dtype = global_("numpy", "dtype") + sbu("O8") + NEWFALSE + NEWTRUE + TUPLE3 + REDUCE
    dtype += (
        MARK
        + binint1(3)
        + sbu("|")
        + NONE
        + NONE
        + NONE
        + binint(-1)
        + binint(-1)
        + binint1(63)
        + TUPLE
        + BUILD
    )
    shape = binint1(1) + TUPLE1
    state = (
        EMPTY_DICT
        + MARK
        + b"".join(
            (
                sbu("subclass"),
                global_("numpy", "ndarray"),
                sbu("shape"),
                shape,
                sbu("order"),
                sbu("C"),
                sbu("dtype"),
                dtype,
                sbu("allow_mmap"),
                NEWFALSE,
                # Memo entries 0 and 1 of the first stream: unused attributes to joblib.
                sbu("note"),
                sbu("os") + binput(0),
                sbu("tag"),
                sbu("system") + binput(1),
            )
        )
        + SETITEMS
    )
    nested = (
        proto(4) + sbu("builtins") + MEMOIZE + sbu("list") + MEMOIZE + binget(0) + binget(1) + STACK_GLOBAL
    )
    nested += sbu("true") + TUPLE1 + REDUCE + STOP
    data = proto(4) + wrapper + state + BUILD + nested + STOP
    return Built(data, b.filename("model.joblib", "model.pkl"), "joblib_array:object-memo")


def _nop_fill(length: int) -> bytes:
    """``length`` (>= 2) bytes of opcodes that leave the stack as it was."""
    assert length >= 2
    threes = length % 2  # one BININT1 POP (3 bytes) makes an odd length even
    return (binint1(0) + POP) * threes + (NONE + POP) * ((length - 3 * threes) // 2)


def _attack_pickle(b: Builder, text_only: bool = False) -> bytes:
    """A plain dangerous pickle: os.system("true") through REDUCE."""
    body = global_("os", "system") + MARK + string("true") + TUPLE + REDUCE
    if text_only:
        return body + STOP
    return (proto(2) if b.chance(0.5) else b"") + body + STOP


@functools.cache
def _hdf5_with_user_block() -> bytes:
    import h5py
    import numpy

    handle = io.BytesIO()
    with h5py.File(handle, "w", userblock_size=512) as h5:
        h5.create_dataset("weights", data=numpy.arange(4.0))
    return handle.getvalue()


def _zip_archive() -> bytes:
    handle = io.BytesIO()
    with zipfile.ZipFile(handle, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
        archive.writestr("archive/version", "3\n")
    return handle.getvalue()


def _npy_bytes() -> bytes:
    import numpy

    handle = io.BytesIO()
    numpy.save(handle, numpy.arange(4.0))
    return handle.getvalue()


def _tar_with_pickle_name(attack: bytes) -> bytes:
    handle = io.BytesIO()
    with tarfile.open(fileobj=handle, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo(attack.decode("ascii"))
        content = pickle.dumps([1, 2, 3], protocol=2)
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    return handle.getvalue()


def fam_polyglot(b: Builder) -> Built:
    kind = b.rng.choice(
        ("zip-after-pickle", "hdf5-user-block", "npy-after-pickle", "tar-name", "tflite-identifier")
    )
    b.rule(f"polyglot:{kind}", trick=True)
    attack = _attack_pickle(b)
    if kind == "zip-after-pickle":
        data = attack + _zip_archive()
        name = b.filename("model.pt", "pytorch_model.bin", "model.zip", "model.npz", "model.pkl")
    elif kind == "hdf5-user-block":
        base = bytearray(_hdf5_with_user_block())
        base[: len(attack)] = attack
        data = bytes(base)
        name = b.filename("model.h5", "tf_model.h5", "model.hdf5", "model.keras", "model.pkl")
    elif kind == "npy-after-pickle":
        data = attack + _npy_bytes()
        name = b.filename("model.npy", "weights.npy", "model.pkl")
    elif kind == "tar-name":
        data = _tar_with_pickle_name(_attack_pickle(b, text_only=True))
        name = b.filename("model.tar", "model.pt", "model.pkl")
    else:
        # Bytes 4-8 of a TFLite file are its identifier; here they are a SHORT_BINSTRING's.
        body = _attack_pickle(b, text_only=True)
        data = proto(2) + short_binstring("TFL3") + POP + body
        name = b.filename("model.tflite", "model.pkl")
    return Built(data, name, f"polyglot:{kind}:{name.rsplit('.', 1)[-1]}")


def fam_joblib_header(b: Builder) -> Built:
    attack = _attack_pickle(b)
    kind = b.rng.choice(("zf", "zf", "zf", "zlib", "gzip", "bz2", "xz", "lzma", "lz4"))
    if kind == "zf":
        spelling = b.rng.choice(
            ("0x{:x}", "0X{:X}", "{:x}", " 0x{:x}", "+0x{:x}", "0x_{:x}", "0x{:x}\t", "0x{:X}")
        )
        length = spelling.format(len(attack)).encode()
        if length.strip() and b.chance(0.7):
            length = length.ljust(19)
        space = b" " if b.chance(0.3) else b""
        data = b"ZF" + length + space + zlib.compress(attack)
        variant = "zf:" + (
            "canonical" if spelling == "0x{:x}" and len(length) == 19 and not space else "variant"
        )
        b.rule(
            f"zf:{spelling!r}:{len(length)}:{'space' if space else 'nospace'}",
            trick=variant != "zf:canonical",
        )
    elif kind == "zlib":
        data, variant = zlib.compress(attack), "zlib"
    elif kind == "gzip":
        data, variant = gzip.compress(attack, mtime=0), "gzip"  # no clock in the bytes
    elif kind == "bz2":
        data, variant = bz2.compress(attack), "bz2"
    elif kind == "xz":
        data, variant = lzma.compress(attack, format=lzma.FORMAT_XZ), "xz"
    elif kind == "lzma":
        data, variant = lzma.compress(attack, format=lzma.FORMAT_ALONE), "lzma-alone"
    else:
        import lz4.frame

        data, variant = lz4.frame.compress(attack), "lz4"
    b.rule(f"compressor:{variant}", trick=True)
    name = b.filename("model.joblib", "model.pkl", "model.joblib.z", "model.pkl.gz")
    return Built(data, name, f"joblib_header:{variant}")


# -- realistic data, written by the real serialisers -------------------------------------


def _random_plain(rng: random.Random, depth: int = 0) -> object:
    kinds = ["int", "float", "str", "bytes", "none", "bool"] + (
        ["list", "tuple", "dict", "set"] if depth < 3 else []
    )
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randrange(-(2**40), 2**40)
    if kind == "float":
        return rng.uniform(-1e9, 1e9)
    if kind == "str":
        return "".join(rng.choice("abcxyz é_") for _ in range(rng.randrange(12)))
    if kind == "bytes":
        return rng.randbytes(rng.randrange(16))
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind in ("list", "tuple"):
        items = [
            _random_plain(rng, depth + 1)
            for _ in range(rng.choice((0, 1, 3, 70)) if depth == 0 else rng.randrange(4))
        ]
        return items if kind == "list" else tuple(items)
    if kind == "set":
        return {rng.randrange(100) for _ in range(rng.randrange(5))}
    return {f"k{rng.randrange(99)}": _random_plain(rng, depth + 1) for _ in range(rng.randrange(5))}


def _stdlib_object(rng: random.Random) -> object:
    plain = _random_plain(rng, 2)
    makers: list[Callable[[], object]] = [
        lambda: collections.OrderedDict(a=plain, b=1),
        lambda: collections.deque([plain, 1], maxlen=rng.choice((None, 5))),
        lambda: collections.Counter("modelsec"),
        lambda: collections.defaultdict(list, {"a": [1]}),
        lambda: datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=rng.choice((None, datetime.UTC))),
        lambda: datetime.date(2020, 5, 17),
        lambda: datetime.timedelta(days=rng.randrange(99)),
        lambda: decimal.Decimal("3.25"),
        lambda: fractions.Fraction(3, 7),
        lambda: uuid.UUID(int=rng.getrandbits(128)),
        lambda: complex(rng.random(), 2.0),
        lambda: bytearray(rng.randbytes(8)),
        lambda: range(1, 9, 2),
        lambda: slice(1, None, 2),
        lambda: frozenset({1, 2}),
        lambda: types.SimpleNamespace(a=plain, lr=0.1),
        lambda: argparse.Namespace(epochs=3, name="run"),
    ]
    return rng.choice(makers)()


def _numpy_object(rng: random.Random) -> object:
    import numpy

    generator = numpy.random.default_rng(rng.randrange(2**32))
    dtype = rng.choice(("f8", "f4", "i8", "i4", "u1", "?", "c16", "S4", "U3", "O", "structured"))
    shape = rng.choice(((3,), (2, 3), (0,), (), (4, 1)))
    if dtype == "O":
        array = numpy.empty(shape, dtype=object)
        for position in numpy.ndindex(shape):
            array[position] = _random_plain(rng, 2)
    elif dtype == "structured":
        array = numpy.zeros(shape, dtype=[("a", "<f4"), ("b", "<i2")])
    else:
        array = (generator.random(shape) * 100).astype(dtype)
    makers: list[Callable[[], object]] = [
        lambda: array,
        lambda: numpy.asfortranarray(numpy.atleast_2d(array)),
        lambda: numpy.float64(rng.random()),
        lambda: numpy.int32(rng.randrange(99)),
        lambda: numpy.dtype(rng.choice(("f8", "<i4", "U5", "V8"))),
        lambda: numpy.ma.masked_array([1.0, 2.0], mask=[False, True]),
        lambda: numpy.random.RandomState(rng.randrange(99)),
        lambda: numpy.random.Generator(
            rng.choice((numpy.random.PCG64, numpy.random.MT19937, numpy.random.Philox, numpy.random.SFC64))(
                rng.randrange(9)
            )
        ),
        lambda: numpy.random.SeedSequence(rng.randrange(99)),
        lambda: {"weights": array, "bias": numpy.zeros(2)},
    ]
    return rng.choice(makers)()


def _pandas_object(rng: random.Random) -> object:
    import numpy
    import pandas

    frame_ = pandas.DataFrame(
        {"x": numpy.arange(3.0), "y": ["a", "b", "c"], "z": pandas.Categorical(["p", "q", "p"])}
    )
    makers: list[Callable[[], object]] = [
        lambda: frame_,
        lambda: frame_.set_index("y"),
        lambda: pandas.Series([1, 2, None], dtype="Int64"),
        lambda: pandas.date_range("2024-01-01", periods=3, tz=rng.choice((None, "UTC"))),
        lambda: pandas.MultiIndex.from_tuples([(1, "a"), (2, "b")]),
        lambda: pandas.Timestamp("2024-01-01"),
        lambda: pandas.Timedelta(days=2),
        lambda: pandas.Interval(0, 1),
        lambda: pandas.period_range("2024-01", periods=2, freq="M"),
    ]
    return rng.choice(makers)()


SKLEARN_MODELS = (
    "LogisticRegression",
    "DecisionTreeClassifier",
    "RandomForestClassifier",
    "StandardScaler",
    "PCA",
    "KMeans",
    "Pipeline",
    "HistGradientBoostingClassifier",
    "MLPClassifier",
    "SVC",
    "KNeighborsClassifier",
    "TfidfVectorizer",
    "OneHotEncoder",
    "Ridge",
    "IsolationForest",
)


@functools.cache
def _fitted(name: str, variant: int) -> object:
    import numpy
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest, RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    generator = numpy.random.default_rng(variant)
    X, y = generator.random((30, 3)), numpy.arange(30) % 2
    models: dict[str, Callable[[], object]] = {
        "LogisticRegression": lambda: LogisticRegression().fit(X, y),
        "DecisionTreeClassifier": lambda: DecisionTreeClassifier(max_depth=3).fit(X, y),
        "RandomForestClassifier": lambda: RandomForestClassifier(n_estimators=3, max_depth=2).fit(X, y),
        "StandardScaler": lambda: StandardScaler().fit(X),
        "PCA": lambda: PCA(2).fit(X),
        "KMeans": lambda: KMeans(2, n_init=1).fit(X),
        "Pipeline": lambda: Pipeline([("s", StandardScaler()), ("m", LogisticRegression())]).fit(X, y),
        "HistGradientBoostingClassifier": lambda: HistGradientBoostingClassifier(max_iter=3).fit(X, y),
        "MLPClassifier": lambda: MLPClassifier((4,), max_iter=5).fit(X, y),
        "SVC": lambda: SVC().fit(X, y),
        "KNeighborsClassifier": lambda: KNeighborsClassifier(3).fit(X, y),
        "TfidfVectorizer": lambda: TfidfVectorizer().fit(["a model", "another model", "data"]),
        "OneHotEncoder": lambda: OneHotEncoder().fit([["a"], ["b"]]),
        "Ridge": lambda: Ridge().fit(X, y),
        "IsolationForest": lambda: IsolationForest(n_estimators=3, random_state=variant).fit(X),
    }
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = models[name]()
    # A first pickling settles state some estimators create lazily (MLPClassifier's first
    # dump differs from its later ones): every program must depend only on seed and index.
    pickle.dumps(model)
    return model


def fam_data_dumps(b: Builder) -> Built:
    rng = b.rng
    source = rng.choice(("plain", "stdlib", "numpy", "numpy", "pandas", "sklearn", "sklearn"))
    if source == "plain":
        value = _random_plain(rng)
    elif source == "stdlib":
        value = _stdlib_object(rng)
    elif source == "numpy":
        value = _numpy_object(rng)
    elif source == "pandas":
        value = _pandas_object(rng)
    else:
        value = _fitted(rng.choice(SKLEARN_MODELS), rng.randrange(4))
    writer = rng.choice(("pickle", "pickle", "pickle", "joblib", "numpy"))
    b.rule(f"dumps:{source}:{type(value).__name__}:{writer}")
    if writer == "joblib":
        import joblib

        compress = rng.choice((0, 0, 3, ("zlib", 1), ("gzip", 1), ("bz2", 1), ("xz", 1), ("lzma", 1)))
        handle = io.BytesIO()
        joblib.dump(value, handle, compress=compress)
        data = handle.getvalue()
        if data[:3] == b"\x1f\x8b\x08":
            # gzip's header carries the time of writing (MTIME, outside the CRC): zero it, so
            # that a program depends only on its seed and index
            data = data[:4] + bytes(4) + data[8:]
        return Built(data, b.filename("model.joblib", "model.pkl"), f"data_dumps:{source}:joblib")
    if writer == "numpy":
        import numpy

        handle = io.BytesIO()
        numpy.save(handle, numpy.array([value, None], dtype=object), allow_pickle=True)
        return Built(handle.getvalue(), b.filename("model.npy", "weights.npy"), f"data_dumps:{source}:numpy")
    data = pickle.dumps(value, protocol=rng.randrange(0, 6))
    return Built(data, b.filename(), f"data_dumps:{source}:pickle")


FamilyBuilder = Callable[[Builder], Built]
# name -> (weight, builder, data only?)
FAMILIES: dict[str, tuple[int, FamilyBuilder, bool]] = {
    "data_dumps": (16, fam_data_dumps, True),
    "data_grammar": (10, fam_data_grammar, True),
    "side_effect_probe": (10, fam_side_effect_probe, True),
    "build_setstate": (9, fam_build_setstate, False),
    "append_method": (9, fam_append_method, False),
    "additems_method": (5, fam_additems_method, False),
    "helper_callable": (8, fam_helper_callable, False),
    "container_methods": (4, fam_container_methods, True),
    "trampoline_probe": (3, fam_trampoline_probe, False),
    "resolver_import": (4, fam_resolver_import, False),
    "joblib_wrapper": (6, fam_joblib_wrapper, False),
    "joblib_array": (6, fam_joblib_array, True),
    "joblib_object_array": (1, fam_joblib_object_array, False),
    "polyglot": (5, fam_polyglot, False),
    "joblib_header": (4, fam_joblib_header, False),
    "direct_call": (3, fam_direct_call, False),
    "unlisted_import": (2, fam_unlisted_import, False),
    "instance_rewiring": (3, fam_instance_rewiring, True),
}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).strip("_").lower().replace("__", "_")


def finding_class(program: Program) -> str:
    """The class a finding on ``program`` belongs to: the design gap it exercises (the
    names of the regression tests in tests/pickle/test_bypasses.py), coarser than the
    mechanism, which also records how the callable was obtained."""
    family, parts = program.family, program.mechanism.split(":")
    if family == "build_setstate":
        return "build_setstate_from_instance_dict"
    if family == "append_method":
        holder = "bunch_getattr" if parts[2] == "bunch" else "instance_dict"
        return f"append_calls_{parts[1]}_from_{holder}"
    if family == "additems_method":
        return "additems_calls_add_from_instance_dict"
    if family == "helper_callable":
        verb = (
            "calls_computed_callable"
            if parts[1] in ("randomstate_ctor", "generator_ctor")
            else "instantiates_computed_class"
        )
        return f"{parts[1]}_{verb}"
    if family == "resolver_import":
        return f"ufunc_reconstruct_imports_{'computed_name' if parts[1] == 'computed' else 'unlisted_module'}"
    if family == "joblib_wrapper":
        if "slotstate" in parts[2]:
            return "joblib_wrapper_filename_in_slotstate"
        if parts[3] == "past-64":
            return "joblib_wrapper_filename_past_64_items"
        return f"joblib_wrapper_built_by_{parts[1].lower()}"
    if family in ("joblib_array", "joblib_header", "polyglot", "direct_call", "unlisted_import"):
        return "_".join(parts[:2]).replace("-", "_").replace("/", "_").lower()
    if family == "trampoline_probe":
        function = parts[1].rsplit(".", 1)[-1]
        known = {
            "__randomstate_ctor": "randomstate_ctor_calls_computed_callable",
            "__generator_ctor": "generator_ctor_calls_computed_callable",
            "__bit_generator_ctor": "bit_generator_ctor_instantiates_computed_class",
        }
        return known.get(function, "trampoline_in_" + _snake(function))
    if family == "container_methods":
        return "container_method_side_effect_in_" + _snake(parts[1].rsplit(".", 2)[-2])
    if family == "instance_rewiring":
        return {
            "class_swap": "slot_state_swaps_the_instance_class",
            "dict_alias": "slot_state_aliases_the_instance_dict",
            "builtin_dunder": "builtin_runs_methods_of_an_instance_with_a_planted_callable",
        }[parts[1]]
    if family == "joblib_object_array":
        return "joblib_object_array_shares_memo_with_pickle_load"
    if family == "side_effect_probe":
        cls, method = parts[1].rsplit(".", 1)
        return f"side_effect_in_{_snake(cls.rsplit('.', 1)[-1])}_{method.strip('_')}"
    return re.sub(r"[^a-z0-9]+", "_", program.mechanism.lower())


def generate(seed: int, index: int, family: str | None = None) -> Program:
    """Program ``index`` of campaign ``seed`` (optionally forcing a family)."""
    rng = random.Random(f"modelsec-soundness:{seed}:{index}")
    names = list(FAMILIES)
    chosen = family or rng.choices(names, [FAMILIES[n][0] for n in names])[0]
    _, build, data_only = FAMILIES[chosen]
    builder = Builder(rng, catalog(), data_only=data_only)
    built = build(builder)
    return Program(
        seed,
        index,
        built.data,
        built.filename,
        chosen,
        built.mechanism,
        tuple(builder.rules),
        builder.data_only,
    )
