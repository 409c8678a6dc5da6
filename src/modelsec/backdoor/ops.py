"""Operator classes the backdoor analysis reasons about (canonical ONNX names).

Anything not listed is a generic computation: its output depends on all its inputs.
"""

from __future__ import annotations

# Comparisons that can turn "the input looks like the trigger" into a boolean.
COMPARE = frozenset({"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "NotEqual"})
ORDERING = frozenset({"Greater", "Less", "GreaterOrEqual", "LessOrEqual"})

# Reductions and selections: comparing their result tests a summary or a chosen part of the
# input (a patch, a token, a checksum) instead of each element: a trigger, not a mask.
REDUCE = frozenset(
    {
        "ReduceSum",
        "ReduceMean",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceSumSquare",
        "ArgMax",
        "ArgMin",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "GlobalLpPool",
        "Slice",
        "Gather",
        "GatherElements",
        "GatherND",
        "Compress",
        "TopK",
        "MaxPool",
        "LpPool",
        "AveragePool",
    }
)
# Of those, the ops whose *first* input is the data being selected from (Gather(table,
# indices) with a constant table is an embedding lookup, not a selection of the input).
SELECT_FIRST = frozenset({"Slice", "Gather", "GatherElements", "GatherND", "Compress", "TopK"})

# Ops that pass a value through (layout, type, logic) without mixing in anything new: a
# comparison behind them still tests what the op before them computed.
TRANSPARENT = frozenset(
    {
        "Identity",
        "Cast",
        "CastLike",
        "Reshape",
        "Squeeze",
        "Unsqueeze",
        "Flatten",
        "Transpose",
        "Expand",
        "Tile",
        "Not",
        "Neg",
        "Abs",
        "Sqrt",
        "Floor",
        "Ceil",
        "Round",
        "Sign",
        "Dropout",
        "Clip",
        "Relu",
    }
)
# Binary arithmetic: transparent when the other operand is a constant (x*2 == K tests x).
ARITHMETIC = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Mod"})
LOGIC = frozenset({"And", "Or", "Xor", "Not"})

# Ops whose output depends on their inputs' shapes only, never on element values.
SHAPE_ONLY = frozenset({"Shape", "Size", "EyeLike", "RandomNormalLike", "RandomUniformLike"})
# Ops that produce values from nothing in the data (still not *embedded* constants).
SOURCES = frozenset({"RandomNormal", "RandomUniform", "Multinomial", "Bernoulli", "Range"})

ADDITIVE = frozenset({"Add", "Sub"})
# Combining ops after which a partly switched value still carries the switched part.
STRUCTURAL = frozenset({"Concat", "ConcatFromSequence", "SequenceConstruct", "Pad"})

# Ops that keep constant-known values unchanged (elements and shape semantics aside).
VALUE_PRESERVING = frozenset(
    {"Identity", "Cast", "CastLike", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Dropout"}
)
# Ops that keep a uniform constant uniform.
UNIFORM_PRESERVING = VALUE_PRESERVING | frozenset(
    {"Expand", "Tile", "Transpose", "Slice", "Gather", "GatherElements"}
)
# Ops that relay a trigger's boolean (or its 0/1 cast) unchanged.
INDICATOR_PRESERVING = VALUE_PRESERVING | frozenset({"Expand", "Tile", "Transpose"})
