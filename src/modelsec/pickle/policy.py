"""Classify a pickle global: SAFE, DATA (reference only), DANGEROUS or UNKNOWN.

Allowlist first: a name is SAFE only if its exact dotted path is listed. Otherwise every
path the import can resolve to (:meth:`GlobalName.candidate_paths`, before and after the
Python 2 name mapping) is checked against the denylist; a hit anywhere in the chain is
DANGEROUS. Everything else is UNKNOWN: calling it is suspicious by itself.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

from modelsec.pickle.allowlist import DATA_ONLY, safe_globals
from modelsec.pickle.denylist import Category, denied
from modelsec.pickle.names import GlobalName


class Verdict(enum.IntEnum):
    SAFE = 0
    DATA = 1  # may be referenced; calling it is treated like an unknown callable
    UNKNOWN = 2
    DANGEROUS = 3


@dataclass(frozen=True, slots=True)
class Classification:
    """What the allow- and denylists say about one dotted path, and which entry said it."""

    verdict: Verdict
    path: str  # the dotted path as CPython 3 imports it (after Python 2 mapping)
    reason: str = ""  # the allow/deny entry that decided
    category: Category | None = None

    @property
    def callable_ok(self) -> bool:
        return self.verdict is Verdict.SAFE


def _verdict_of(name: GlobalName) -> Classification:
    path = name.path
    if path in DATA_ONLY:
        return Classification(Verdict.DATA, path, path)
    if path in safe_globals():
        return Classification(Verdict.SAFE, path, path)
    module_parts = len(name.module.split("."))
    candidates = name.candidate_paths()  # the full path first, then attribute tails
    hits = [
        hit
        for index, candidate in enumerate(candidates)
        if (hit := denied(candidate, module_parts if index == 0 else 0))
    ]
    if hits:
        # A nested deserialiser anywhere in the chain decides the category (it has its
        # own threat); otherwise the most specific entry of the full path.
        hit = next((h for h in hits if h.category is Category.LOADER), hits[0])
        return Classification(Verdict.DANGEROUS, path, hit.path, hit.category)
    return Classification(Verdict.UNKNOWN, path)


@functools.lru_cache(maxsize=65536)
def classify(module: str, name: str) -> Classification:
    """The verdict for ``module`` + ``name`` as written in the stream."""
    written = GlobalName(module, name)
    mapped = written.py3()
    as_mapped = _verdict_of(mapped)
    if mapped == written:
        return as_mapped
    # CPython maps Python 2 names for protocols 0-2 only; with protocol 3+ it imports the
    # written name. Either import may happen, so a dangerous reading of either wins.
    as_written = _verdict_of(written)
    if as_written.verdict is Verdict.DANGEROUS and as_mapped.verdict is not Verdict.DANGEROUS:
        return as_written
    return as_mapped
