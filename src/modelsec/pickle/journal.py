"""What one view of a joblib file changed in the values it shares with the other, undone.

joblib reads each array's bytes out of band; plain ``pickle.load`` reads the same bytes as
more opcodes of the stream. The scanner follows both: the plain view (a continuation of
the machine) starts from the joblib view's stack and memo, and so holds the same
containers and objects. Neither loader runs the other's opcodes, so what the plain view
writes into them (a ``SETITEM`` into a state dict, a ``BUILD`` of an instance) must not be
what the joblib view's checks read afterwards: a forged tree's ``nodes`` replaced by a
genuine array that only the plain view adds, or a wrapper's ``shape`` that makes the
scanner skip bytes joblib reads as opcodes (red team, session 23). The continuation
records each value before it first changes it, and the scanner puts them back when it
ends. Its own findings stay: they are the plain view's.
"""

from __future__ import annotations

from dataclasses import fields

from modelsec.pickle.objects import InstanceAttrs
from modelsec.pickle.values import Call, Container, Value

_CONTAINER_FIELDS = tuple(f.name for f in fields(Container))
_CALL_FIELDS = tuple(
    f.name for f in fields(Call) if f.name not in ("origin", "weight")
)  # set once, at creation
_ATTRS_FIELDS = tuple(f.name for f in fields(InstanceAttrs))
_MUTABLE = (list, dict, set)  # copied, so that changes made in place are undone too


def _copy(value: object) -> object:
    return value.copy() if isinstance(value, _MUTABLE) else value


class Journal:
    """Values as they were before the plain view first changed them, to put back."""

    def __init__(self) -> None:
        self._saved: dict[int, tuple[object, tuple[object, ...]]] = {}

    def record(self, value: Value) -> None:
        """Remember ``value`` (a Container, or a Call and what the stream wrote into it)
        as it is now, unless it already is remembered."""
        if isinstance(value, Container):
            self._save(value, _CONTAINER_FIELDS)
        elif isinstance(value, Call):
            self._save(value, _CALL_FIELDS)
            if value.attrs is not None:
                self._save(value.attrs, _ATTRS_FIELDS)

    def _save(self, value: object, fields: tuple[str, ...]) -> None:
        if id(value) not in self._saved:  # the value stays referenced here: its id is its own
            self._saved[id(value)] = (value, tuple(_copy(getattr(value, name)) for name in fields))

    def undo(self) -> None:
        """Put every recorded value back as it was."""
        for value, saved in self._saved.values():
            names = (
                _CONTAINER_FIELDS
                if isinstance(value, Container)
                else _CALL_FIELDS
                if isinstance(value, Call)
                else _ATTRS_FIELDS
            )
            for name, before in zip(names, saved, strict=True):
                setattr(value, name, before)
        self._saved.clear()
