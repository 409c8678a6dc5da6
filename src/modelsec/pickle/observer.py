"""What the stack machine reports, as it sees it. The base class ignores everything: detection
probes use it as is, the scanner overrides what it turns into findings."""

from __future__ import annotations

from modelsec.pickle.values import Call, Global, Value


class Observer:
    """Receives what the machine sees. Offsets are those of the opcode responsible."""

    def imported(self, glob: Global) -> None:
        """The stream imports ``glob`` (GLOBAL, STACK_GLOBAL, INST, or a resolver)."""

    def invoked(self, callee: Value, offset: int, how: str) -> None:
        """A callable outside the allowlist (or one computed by the stream) is called,
        explicitly or by the unpickler itself (``how`` says which)."""

    def unsafe_method(self, owner: str, method: str, offset: int, how: str, why: str) -> None:
        """The unpickler calls ``owner.method`` (a method of an allowlisted class it looks up
        without a call opcode) and the allowlist generator could not prove it safe."""

    def violated(self, callee: Global, offset: int, what: str) -> None:
        """An allowlisted helper is called outside its argument contract."""

    def mutated(self, target: Global, offset: int, how: str) -> None:
        """State is written into a module or class object."""

    def unresolved(self, offset: int, what: str) -> None:
        """An import that cannot be named statically."""

    def getattr_resolved(self, getattr_global: Global) -> None:
        """A ``getattr`` global was used with literal operands (its result was imported)."""

    def loader_called(self, loader: Global, payload: Value, offset: int) -> None:
        """A nested deserialiser is called with ``payload``."""

    def literal(self, value: Value, offset: int) -> None:
        """A string or bytes literal that looks like an embedded pickle."""

    def external_file(self, wrapper: Global, filename: Value, offset: int) -> None:
        """A joblib wrapper that loads its array from a file named in the stream."""

    def literal_bytes(self, value: Value, limit: int) -> bytes | None:
        """The bytes a literal stands for (inline, a large literal the reader skipped, a
        decoded one: ``_codecs.encode(s, 'latin1')``), at most ``limit``; None if it is no
        bytes literal or nothing can be read (detection probes read nothing back)."""
        return None

    def may_examine(self, items: int) -> bool:
        """Whether a check may examine ``items`` more container items past the 64 kept (a
        memoised list handed to a million objects is examined a million times); charged to
        the scan. Detection probes examine nothing."""
        return False

    def joblib_array_value(self, wrapper: Call) -> Value:
        """The array a joblib wrapper of an object array stands for (its nested stream's
        result), or None."""
        return None

    def joblib_array_bytes(self, wrapper: Call, limit: int) -> bytes | None:
        """The bytes a joblib array wrapper's data took in the file, at most ``limit``."""
        return None
