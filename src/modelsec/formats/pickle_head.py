"""A byte test that rules a file's head out as a pickle without the pickle machine.

The pickle detector runs on every file's head, and the symbolic machine it runs costs a
quarter of a small scan's start-up to import (issue 14). Most heads are ruled out by their
first bytes: a safetensors file opens with its header's length as eight little-endian
bytes, so a small header gives a byte or two and then zeros, and 0x00 is no pickle opcode.

:func:`rules_out` answers True only where :func:`modelsec.pickle.scanner.looks_like_pickle`
is certain to answer False, whatever the file's size, because the machine would break
with nothing imported or called (noise, not a pickle: ``StreamResult.noise``):

- it follows the opcodes that can neither import, call, nor end the stream (plain values,
  marks, containers of them, the memo) while their arguments have a fixed width, and
  rules the head out when it then meets a byte that is no opcode;
- a ``PROTO`` opcode counts only with the opcode after it, so a head whose third byte is
  no opcode is out (safetensors pads its header to a multiple of 8 bytes, so its first
  byte is 0x80, ``PROTO``, for one header length in 32);
- a first opcode whose argument is a line (``GLOBAL``, ``INT``, ``PERSID``...) in a head
  without a newline cannot be read at all, nor a ``PERSID`` whose line is too long or not
  ASCII (every zip opens with ``PK``, a ``PERSID`` with the binary line of its local header);
- a first opcode that takes a value from the stack or a mark (``ADDITEMS``, ``REDUCE``,
  ``STOP``...) breaks on the machine's empty stack before it does anything.

Anything else (an import, a length-prefixed argument, the end of the head) is left to the
machine.

:func:`rules_in` is the converse for the usual opening of a real pickle: ``PROTO`` with a
known version, then ``FRAME`` with its eight bytes, or an empty dict, list or mark. The
machine accepts both opcodes whatever their values (a frame's length is only compared with
what follows), and a ``PROTO``-led stream that took a second opcode is a pickle whatever
comes next (``DECIDED_AFTER_PROTO``): the answer is True without the probe, which costs as
much as a tenth of a small pickle's scan (issue 14: many files). ``tests/formats/test_pickle_head.py`` checks the equivalence on random and real
heads.
"""

from __future__ import annotations

# Every opcode byte CPython's unpickler knows (protocols 0 to 5).
OPCODES = frozenset(b"().012BCFGIJKLMNPQRSTUVX]abcdeghijlopqrstu}" + bytes(range(0x80, 0x99)))

# Opcodes with no effect but on the stack, the marks or the memo (no import, no call, no
# STOP, no frame), by the width of their argument in bytes.
_PLAIN_WIDTH: dict[int, int] = {
    # no argument: MARK, EMPTY_TUPLE, POP, POP_MARK, DUP, NONE, EMPTY_LIST, EMPTY_DICT,
    # DICT, LIST, TUPLE
    **dict.fromkeys(b"()012N]}dlt", 0),
    # no argument: TUPLE1, TUPLE2, TUPLE3, NEWTRUE, NEWFALSE, EMPTY_SET, MEMOIZE
    **dict.fromkeys(b"\x85\x86\x87\x88\x89\x8f\x94", 0),
    ord("K"): 1,  # BININT1
    ord("h"): 1,  # BINGET
    ord("q"): 1,  # BINPUT
    ord("M"): 2,  # BININT2
    ord("J"): 4,  # BININT
    ord("j"): 4,  # LONG_BINGET
    ord("r"): 4,  # LONG_BINPUT
    ord("G"): 8,  # BINFLOAT
}
PROTO = 0x80
# Opcodes whose argument is a newline-terminated line: FLOAT, INT, LONG, PERSID, STRING,
# UNICODE, GLOBAL, GET, INST, PUT.
_LINE_ARGUMENT = frozenset(b"FILPSVcgip")
# Opcodes without an argument that take a value from the stack or a mark first: READONLY_BUFFER,
# APPEND, APPENDS, LIST, TUPLE, TUPLE1-3, DICT, SETITEM, SETITEMS, ADDITEMS, FROZENSET, POP,
# POP_MARK, DUP, MEMOIZE, STACK_GLOBAL, REDUCE, BUILD, OBJ, NEWOBJ, NEWOBJ_EX, STOP, BINPERSID.
_FAILS_FIRST = frozenset(b"\x98aelt\x85\x86\x87dsu\x90\x91012\x94\x93Rbo\x81\x92.Q")
HIGHEST_PROTOCOL = 5
# Second opcodes that picklers write after PROTO and the machine always accepts: FRAME
# (with its 8-byte length, below), EMPTY_DICT, EMPTY_LIST, MARK.
_ACCEPTED_SECOND = {0x95: 8, ord("}"): 0, ord("]"): 0, ord("("): 0}
PERSID = ord("P")
NUMBER_LINE_LIMIT = 5000  # the longest PERSID (or number) line the reader decodes (opcodes.py)
# Far below the machine's checkpoints (limits are checked every 65,536 opcodes).
MAX_FOLLOWED = 16


def rules_out(head: bytes) -> bool:
    """True if ``head`` cannot start a pickle (see the module's docstring)."""
    if not head:
        return False
    if head[0] == PROTO:
        return len(head) > 2 and head[2] not in OPCODES
    if head[0] in _FAILS_FIRST or (head[0] in _LINE_ARGUMENT and b"\n" not in head):
        return True
    if head[0] == PERSID:
        newline = head.find(b"\n", 1, 2 + NUMBER_LINE_LIMIT)
        return newline < 0 or not head[1:newline].isascii()
    at = 0
    for _ in range(MAX_FOLLOWED):
        if at >= len(head):
            return False  # the head ends here: the machine decides with the file's size
        code = head[at]
        if code not in OPCODES:
            return True
        width = _PLAIN_WIDTH.get(code)
        if width is None:
            return False
        at += 1 + width
    return False


def rules_in(head: bytes) -> bool:
    """True if ``head`` certainly starts a pickle (see the module's docstring)."""
    if len(head) < 3 or head[0] != PROTO or head[1] > HIGHEST_PROTOCOL:
        return False
    width = _ACCEPTED_SECOND.get(head[2])
    return width is not None and len(head) >= 3 + width
