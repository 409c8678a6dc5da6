#!/usr/bin/env python3
"""Generate the library parts of the pickle allowlist, and the class facts, from the installed code.

    .venv/bin/python hack/gen_pickle_allowlist.py           # write the files, print the review report
    .venv/bin/python hack/gen_pickle_allowlist.py --check   # exit 1 if a committed file is stale
    .venv/bin/python hack/gen_pickle_allowlist.py --review  # also print review lines to fill in

Writes under ``src/modelsec/pickle/`` (commit them; the scanner never imports these
libraries):

* ``allow_<lib>.txt``: globals a pickle may *call*. A class is listed when every method
  the unpickler can reach on it (``__new__``, ``__init__``, ``__setstate__``,
  ``__setattr__``, ``__setitem__``, ``append``, ``extend``, ``add``, ``keys``, the
  lookup hooks, ``__del__``) is safe -- inherited from ``object`` or a builtin type,
  proven pure, or reviewed in ``hack/pickle_reviewed_methods.txt`` -- or when benign
  pickles need it (then its unsafe methods are marked in the facts). A function is listed
  only if real pickles call it at load time and it is pure or reviewed.
* ``refs_<lib>.txt``: globals a pickle may only *reference* (score functions, ufuncs):
  calling one is a finding. Functions that take a callable are on neither list.
* ``classfacts_<group>.json``: for every callable class (and the hand-written ones in
  ``modelsec.pickle.allowlist``), what the unpickler's implicit calls reach.

The report on stderr says what was excluded and why; docs/pickle-allowlist.md explains the
rules and the review process.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import platform
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

HACK = Path(__file__).resolve().parent
REPO = HACK.parent
OUT = REPO / "src" / "modelsec" / "pickle"
for entry in (str(HACK), str(REPO / "src")):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from modelsec.pickle.allowlist import HAND_WRITTEN_REFS, HAND_WRITTEN_SAFE  # noqa: E402
from modelsec.pickle.denylist import denied  # noqa: E402
from pickle_allowlist import benign, candidates, observe  # noqa: E402
from pickle_allowlist.imports import resolve  # noqa: E402
from pickle_allowlist.inspect_class import ClassReport, Fact, Inspector  # noqa: E402
from pickle_allowlist.reviews import load_reviews, source_digest  # noqa: E402
from pickle_allowlist.trampoline import takes_callable  # noqa: E402

LIBRARIES = ("numpy", "pandas", "scipy", "sklearn")
CALLABLE, REFERENCE, EXCLUDED = "callable", "reference", "excluded"


@dataclass(frozen=True)
class Decision:
    path: str
    outcome: str  # CALLABLE, REFERENCE or EXCLUDED
    reason: str


@dataclass
class Generation:
    files: dict[str, str]  # file name under src/modelsec/pickle -> content
    decisions: dict[str, Decision]
    facts: dict[str, ClassReport]  # every path with facts (aliases included) -> facts
    usage: observe.Usage
    report: list[str] = field(default_factory=list)
    review_lines: list[str] = field(default_factory=list)  # "<qualname> sha256:..." to review


def versions() -> dict[str, str]:
    found = {"python": ".".join(platform.python_version_tuple()[:2])}
    for library in (*LIBRARIES, "joblib"):
        found[library] = importlib.import_module(library).__version__
    return found


class Generator:
    def __init__(self) -> None:
        self.inspector = Inspector(load_reviews())
        self.usage = observe.observe_objects(benign.all_objects())
        self.needed = self.usage.classes() | candidates.sklearn_estimators() | HAND_WRITTEN_SAFE
        self.decisions: dict[str, Decision] = {}
        self.facts: dict[str, ClassReport] = {}
        self.review_lines: dict[str, str] = {}

    # -- decisions -----------------------------------------------------------------------

    def decide(self, path: str) -> Decision:
        if "<locals>" in path:
            return Decision(path, EXCLUDED, "local class")
        if hit := denied(path):
            return Decision(path, EXCLUDED, f"denylisted ({hit.path})")
        obj = resolve(path)
        if obj is None:
            return Decision(path, EXCLUDED, "does not import")
        if inspect.isclass(obj):
            return self._class(path, obj)
        if callable(obj):
            return self._function(path, obj)
        return Decision(path, REFERENCE, f"a {type(obj).__name__} value")

    def _class(self, path: str, cls: type) -> Decision:
        report = self.inspector.report(cls)
        unsafe = list(report.unsafe())
        summary = "; ".join(f"{name} of {fact.owner}: {fact.why}" for name, fact in unsafe)
        if not unsafe:
            self._keep_facts(path, report)
            return Decision(path, CALLABLE, "every reachable method is safe")
        self._suggest_reviews(unsafe)
        if path in self.needed or report.path in self.needed:
            self._keep_facts(path, report)
            return Decision(path, CALLABLE, f"benign pickles need it; marked unsafe: {summary}")
        if path in self.usage.referenced:  # dtype=np.float64: named, never called
            return Decision(path, REFERENCE, f"benign pickles only name it; not callable: {summary}")
        return Decision(path, EXCLUDED, summary)

    def _keep_facts(self, path: str, report: ClassReport) -> None:
        self.facts[path] = report
        self.facts[report.path] = report

    def _function(self, path: str, fn: object) -> Decision:
        if path in self.usage.called:
            safe, why = self.inspector.function(fn, path)
            if safe:
                return Decision(path, CALLABLE, f"benign pickles call it; {why}")
            self._suggest_function_review(path, fn)
            return Decision(path, REFERENCE, f"benign pickles call it, but it is not safe: {why}")
        if reason := takes_callable(fn):
            return Decision(path, EXCLUDED, f"takes a callable ({reason})")
        return Decision(path, REFERENCE, "a function: referenced by fitted objects, never called")

    def _suggest_reviews(self, unsafe: list[tuple[str, Fact]]) -> None:
        for name, fact in unsafe:
            method = name.rsplit(".", 1)[-1]  # "type(cls).__call__" -> "__call__"
            owner = resolve(fact.owner)
            raw = getattr(owner, "__dict__", {}).get(method) if owner is not None else None
            fn = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
            self._suggest(f"{fact.owner}.{method}", fn, fact.why)

    def _suggest_function_review(self, path: str, fn: object) -> None:
        self._suggest(path, fn, "called by benign pickles")

    def _suggest(self, qualname: str, fn: object, why: str) -> None:
        if qualname in self.review_lines or qualname in self.inspector.reviews:
            return  # conditional reviews stay unsafe: nothing more to fill in
        try:
            digest = source_digest(fn) if inspect.isfunction(fn) else "compiled"
        except Exception:
            digest = "compiled" if not inspect.isfunction(fn) else "sha256:?"
        self.review_lines[qualname] = f"{qualname}  {digest}  TODO ({why})"

    # -- the run -------------------------------------------------------------------------

    def run(self) -> Generation:
        library_versions = versions()
        files: dict[str, str] = {}
        for library in LIBRARIES:
            names = candidates.LIBRARIES[library]() | self._observed_in(library)
            decided = [self.decide(path) for path in sorted(names)]
            for decision in decided:
                self.decisions[decision.path] = decision
            header = f"# Generated by hack/gen_pickle_allowlist.py from {library} {library_versions[library]}; do not edit.\n"
            files[f"allow_{library}.txt"] = (
                header + _ALLOW_NOTE + _lines(d.path for d in decided if d.outcome == CALLABLE)
            )
            files[f"refs_{library}.txt"] = (
                header + _REFS_NOTE + _lines(d.path for d in decided if d.outcome == REFERENCE)
            )
        self._hand_written_facts()
        for group, entries in sorted(self._fact_groups().items()):
            files[f"classfacts_{group}.json"] = _facts_json(library_versions, entries)
        generation = Generation(files, self.decisions, self.facts, self.usage)
        generation.review_lines = [self.review_lines[k] for k in sorted(self.review_lines)]
        generation.report = review_report(self, generation)
        return generation

    def _observed_in(self, library: str) -> set[str]:
        """Globals of ``library`` real pickles use that the hand-written list does not cover."""
        observed = self.usage.referenced | set(self.usage.called)
        return {
            p
            for p in observed
            if p.startswith(library + ".") and p not in HAND_WRITTEN_SAFE | HAND_WRITTEN_REFS
        }

    def _hand_written_facts(self) -> None:
        for path in sorted(HAND_WRITTEN_SAFE):
            obj = resolve(path)
            if inspect.isclass(obj) and path not in self.facts:
                report = self.inspector.report(obj)
                self._keep_facts(path, report)
                self._suggest_reviews(list(report.unsafe()))

    def _fact_groups(self) -> dict[str, dict[str, ClassReport | str]]:
        groups: dict[str, dict[str, ClassReport | str]] = {}
        for path, report in self.facts.items():
            group = fact_group(report.path)
            entries = groups.setdefault(group, {})
            entries[path] = report if path == report.path else report.path
        return groups


_ALLOW_NOTE = (
    "# Callable: each class's reachable methods are in classfacts_*.json; functions are the\n"
    "# ones real pickles call at load time, pure or reviewed (hack/pickle_reviewed_methods.txt).\n"
)
_REFS_NOTE = (
    "# Reference-only: a pickle may name these (a fitted object keeps them); calling one is a finding.\n"
)


def _lines(paths: Iterable[str]) -> str:
    return "".join(f"{path}\n" for path in sorted(set(paths)))


def fact_group(path: str) -> str:
    top = path.split(".", 1)[0]
    if top in (*LIBRARIES, "joblib"):
        return top
    return "stdlib" if top in sys.stdlib_module_names else "other"


def _facts_json(library_versions: dict[str, str], entries: dict[str, ClassReport | str]) -> str:
    """One class per line, so that a library upgrade shows up as a readable diff."""
    rows = []
    for path, value in sorted(entries.items()):
        body = value.as_json() if isinstance(value, ClassReport) else value
        rows.append(f"{json.dumps(path)}: {json.dumps(body, sort_keys=True)}")
    return (
        "{\n"
        '"generated_by": "hack/gen_pickle_allowlist.py; aliases name their defining path",\n'
        f'"versions": {json.dumps(library_versions, sort_keys=True)},\n'
        '"classes": {\n' + ",\n".join(rows) + "\n}}\n"
    )


def review_report(generator: Generator, generation: Generation) -> list[str]:
    decisions = generation.decisions.values()
    usage = generation.usage
    lines: list[str] = []

    def section(title: str, rows: Iterable[str]) -> None:
        rows = list(rows)
        lines.append(f"== {title} ({len(rows)})")
        lines.extend(f"  {row}" for row in rows)

    counts = {o: sum(d.outcome == o for d in decisions) for o in (CALLABLE, REFERENCE, EXCLUDED)}
    lines.append(f"decided {len(generation.decisions)} names: {counts}")
    section("excluded", (f"{d.path}: {d.reason}" for d in decisions if d.outcome == EXCLUDED))
    section(
        "callable with unsafe methods marked in the facts",
        (f"{d.path}: {d.reason}" for d in decisions if d.outcome == CALLABLE and "marked unsafe" in d.reason),
    )
    section(
        "functions real pickles call at load time (argument shapes seen)",
        (
            f"{path}{_list_state(path, generation)}: {' | '.join(sorted(shapes))}"
            for path, shapes in sorted(usage.called.items())
        ),
    )
    section(
        "unsafe methods benign pickles reach (the machine would report these)", reached_unsafe(generation)
    )
    known = HAND_WRITTEN_SAFE | HAND_WRITTEN_REFS | {d.path for d in decisions if d.outcome != EXCLUDED}
    section(
        "globals real pickles use that no list covers", sorted((usage.referenced | set(usage.called)) - known)
    )
    section("objects the observation could not pickle or follow", usage.unreadable)
    inspector = generator.inspector
    section(
        "stale reviews (source changed; current digest)",
        (f"{q} {d}" for q, d in sorted(inspector.stale_reviews.items())),
    )
    section("reviews no longer used", sorted(set(inspector.reviews) - inspector.used_reviews))
    return lines


# Which implicit methods each observed use of a class runs.
_REACHED_BY = {
    "called": ("__new__", "__init__"),
    "instantiated": ("__new__",),
    "built": ("__setstate__",),
    "SETITEM": ("__setitem__",),
    "SETITEMS": ("__setitem__",),
    "APPEND": ("append",),
    "APPENDS": ("extend", "append"),
    "ADDITEMS": ("add",),
}


def reached_methods(usage: observe.Usage) -> dict[str, set[str]]:
    """class path -> the implicit methods benign pickles made the unpickler run on it."""
    reached: dict[str, set[str]] = {}
    uses = [(p, "called") for p in usage.called] + [(p, "instantiated") for p in usage.instantiated]
    uses += [(p, "built") for p in usage.built]
    uses += [(p, opcode) for p, opcodes in usage.filled.items() for opcode in opcodes]
    for path, use in uses:
        reached.setdefault(path, set()).update(_REACHED_BY[use])
    return reached


def reached_unsafe(generation: Generation) -> list[str]:
    rows = []
    for path, methods in sorted(reached_methods(generation.usage).items()):
        report = generation.facts.get(path)
        for name in sorted(methods):
            fact = report.methods.get(name) if report is not None else None
            if fact is not None and not fact.safe:
                rows.append(f"{path}.{name} -> {fact.owner}: {fact.why}")
    return rows


def _list_state(path: str, generation: Generation) -> str:
    decision = generation.decisions.get(path)
    if decision is not None:
        return f" [{decision.outcome}]"
    return " [hand-written]" if path in HAND_WRITTEN_SAFE else " [on no list]"


def generate() -> Generation:
    return Generator().run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file is stale")
    parser.add_argument("--review", action="store_true", help="print review lines for unsafe methods")
    options = parser.parse_args(argv)
    generation = generate()
    for line in generation.report:
        print(line, file=sys.stderr)
    if options.review:
        print(
            "== review lines (fill in the note, then add to hack/pickle_reviewed_methods.txt)",
            file=sys.stderr,
        )
        for line in generation.review_lines:
            print(line, file=sys.stderr)
    stale = [
        name
        for name, text in generation.files.items()
        if not (OUT / name).exists() or (OUT / name).read_text() != text
    ]
    if options.check:
        for name in stale:
            print(f"stale: src/modelsec/pickle/{name}", file=sys.stderr)
        return 1 if stale else 0
    for name, text in generation.files.items():
        (OUT / name).write_text(text)
    print(
        f"wrote {len(generation.files)} files, {len(stale)} changed: {', '.join(stale) or '-'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
