"""Pickle analysis: what a pickle would import and call, found without unpickling it.

Layers, each in its own module:

* :mod:`~modelsec.pickle.opcodes`: a bounded opcode reader (large literals become
  :class:`~modelsec.pickle.opcodes.Blob` references, never memory) that also records where
  frames and opcodes disagree;
* :mod:`~modelsec.pickle.machine`: a symbolic stack machine mirroring CPython's
  unpickler (stack, marks, memo, containers); what it sees reaches an
  :class:`~modelsec.pickle.observer.Observer`;
* :mod:`~modelsec.pickle.invoke`: every call the unpickler makes, explicit (REDUCE, NEWOBJ,
  INST, OBJ) or implicit (BUILD's ``__setstate__``, APPEND's ``extend``/``append``, ADDITEMS'
  ``add``, SETITEM's ``__setitem__``, ``__new__``/``__init__``), with
  :mod:`~modelsec.pickle.objects` (what a lookup on an instance finds) and
  :mod:`~modelsec.pickle.classfacts` (the methods of each allowlisted class, read from its
  code by ``hack/gen_pickle_allowlist.py``);
* :mod:`~modelsec.pickle.contracts`: what each allowlisted function does with its arguments
  (classes it builds, callables it calls, names it resolves);
* :mod:`~modelsec.pickle.policy`: SAFE / DATA / DANGEROUS / UNKNOWN for each global, from
  :mod:`~modelsec.pickle.allowlist` (name by name, partly generated) and
  :mod:`~modelsec.pickle.denylist`;
* :mod:`~modelsec.pickle.loaders`, :mod:`~modelsec.pickle.embedded`,
  :mod:`~modelsec.pickle.joblib_arrays`: nested loaders and their decoded payloads, pickles
  hidden in data, joblib's inline array bytes;
* :mod:`~modelsec.pickle.scanner`: the glue that reports findings
  (:mod:`~modelsec.pickle.threats`, codes ``MS-PKL-1xx``). docs/pickle.md has the model.

Entry points for other formats:

``scan_pickle_stream(source, ctx, start_offset=0) -> int | None``
    Scan exactly one stream starting at ``start_offset`` of any byte source (slices
    included) and report into ``ctx``; returns the offset just after its STOP, or None when
    the stream broke or a limit stopped it (already reported). Legacy ``torch.save`` files
    are five pickles (magic number, protocol version, sys info, the object, storage keys)
    followed by raw storage bytes: call it five times, feeding each result as the next
    start, then read the storages yourself.

``ctx.scan_member(source, name, expect="pickle")``
    For a member or payload that *is* a pickle file (a torch ``data.pkl``, an object
    ``.npy``'s data): every stream in it, back to back, exactly like a ``.pkl`` file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelsec.pickle.scanner import looks_like_pickle, scan_pickle_source, scan_pickle_stream

__all__ = ["looks_like_pickle", "scan_pickle_source", "scan_pickle_stream"]


def __getattr__(name: str) -> Any:
    """The entry points, imported from the scanner on first use: importing a small module
    of the package (the denylist, the threat codes) must not load the whole machine, which
    is a quarter of a small scan's start-up (issue 14)."""
    if name in __all__:
        from modelsec.pickle import scanner

        return getattr(scanner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
