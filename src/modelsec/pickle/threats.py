"""The pickle analysis' threat catalogue (codes ``MS-PKL-1xx``; stable, never reused)."""

from __future__ import annotations

from modelsec.findings import Severity, threat

LOAD_TIME = "LoadTimeCodeExecution"
SUSPICIOUS = "SuspiciousComponents"

_CONVERT = (
    "Do not load this file. Obtain the model from a trusted publisher in a format that "
    "cannot run code (convert the weights to safetensors)"
)

DANGEROUS_GLOBAL = threat(
    "MS-PKL-100",
    LOAD_TIME,
    Severity.CRITICAL,
    "Pickle imports a dangerous global",
    _CONVERT + ".",
    "Unpickling imports the named object: command and code runners, import and attribute "
    "resolvers, file and network access, interpreter internals. Loading the file with "
    "pickle, torch.load(weights_only=False) or joblib.load runs it.",
)
UNKNOWN_CALL = threat(
    "MS-PKL-101",
    SUSPICIOUS,
    Severity.HIGH,
    "Pickle calls something outside the allowlist",
    "If the class is your own, load the file only where its code is trusted and reviewed; "
    "otherwise convert the weights to safetensors.",
    "The stream invokes (REDUCE, INST, OBJ, NEWOBJ, a class argument of a rebuild helper) a "
    "global that is on no allowlist, or a callable it computed. An unlisted gadget is still "
    "code that runs at load time.",
)
NESTED_LOADER = threat(
    "MS-PKL-102",
    LOAD_TIME,
    Severity.CRITICAL,
    "Pickle calls a nested deserialiser",
    _CONVERT + "; a model never needs to unpickle another payload while loading.",
    "pickle.loads, torch.load, joblib.load, numpy.load, marshal.loads and friends called from "
    "inside a pickle load a second payload the outer scan may not see in full. Literal "
    "payloads are decoded and scanned as nested members.",
)
UNRESOLVED_IMPORT = threat(
    "MS-PKL-103",
    LOAD_TIME,
    Severity.HIGH,
    "Pickle imports a global that cannot be named statically",
    _CONVERT + ".",
    "STACK_GLOBAL fed with computed strings, or an EXT opcode (copyreg extension registry): "
    "what gets imported depends on code that runs during loading. Failing closed.",
)
GLOBAL_MUTATION = threat(
    "MS-PKL-104",
    LOAD_TIME,
    Severity.CRITICAL,
    "Pickle writes into a module or class",
    _CONVERT + ".",
    "BUILD, SETITEM or APPEND applied to an imported module or class sets attributes or "
    "items on it (replacing a function in sys.modules, os.environ[...] = ...), changing code "
    "that later runs.",
)
UNKNOWN_REFERENCE = threat(
    "MS-PKL-105",
    SUSPICIOUS,
    Severity.HIGH,
    "Pickle imports a global outside the allowlist",
    "If the class is your own and reviewed, approve its exact name in the group "
    "(SuspiciousComponents params.allowedGlobals); otherwise convert the weights to safetensors.",
    "The stream imports an unlisted object. Importing runs the module's top-level code, and "
    "the unpickler calls methods of what it builds without any call opcode (__setstate__, "
    "extend, append, add, __setitem__), so an unlisted global is blocked whether or not the "
    "stream visibly calls it. Allowlist first: only reviewed names pass.",
)
EXTERNAL_ARRAY_FILE = threat(
    "MS-PKL-106",
    SUSPICIOUS,
    Severity.HIGH,
    "joblib wrapper loads an array file outside the pickle's directory",
    "Re-save the model with a current joblib (arrays inline) from a trusted source.",
    "Old joblib NDArrayWrapper objects load their array with numpy.load(allow_pickle=True) "
    "from a file name stored in the pickle; an absolute or '..' name reaches any file.",
)
CONTRACT_VIOLATION = threat(
    "MS-PKL-107",
    SUSPICIOUS,
    Severity.HIGH,
    "Pickle calls a trusted helper outside its contract",
    _CONVERT + ".",
    "Some allowlisted rebuild helpers resolve names or call what they are given "
    "(copyreg._reconstructor, NumPy's _ufunc_reconstruct and random-state constructors, "
    "torch's _rebuild_from_type_v2). Each has a contract: names from a closed set as literals, "
    "allowlisted classes, allowlisted callables. A call that breaks it, or whose arguments the "
    "stream computes so that nobody can check them, turns the helper into a trampoline.",
)
MALFORMED = threat(
    "MS-PKL-110",
    SUSPICIOUS,
    Severity.MEDIUM,
    "Malformed or truncated pickle stream",
    "Re-export the model from its source; a stream that breaks mid-way is corrupt or crafted "
    "to confuse scanners.",
    "The stream stops being a valid pickle before its STOP opcode. Whatever ran before the "
    "break is reported separately; scanners and loaders may disagree about the rest.",
)

FRAME_MISMATCH = threat(
    "MS-PKL-111",
    SUSPICIOUS,
    Severity.HIGH,
    "Pickle frames disagree with its opcodes",
    "Re-export the model from its source; no pickler writes such frames.",
    "Protocol 4 frames must hold whole opcodes. CPython's C unpickler (pickle.load, torch.load) "
    "reads through a frame boundary, the pure-Python one (joblib.load) refuses it, and scanners "
    "differ again: an opcode that straddles a frame end, a frame inside a frame or a frame "
    "longer than the data shows each reader a different program.",
)
HAND_CRAFTED = threat(
    "MS-PKL-112",
    SUSPICIOUS,
    Severity.MEDIUM,
    "Pickle stream no pickler writes",
    "Re-export the model from its source; the stream was assembled or edited by hand.",
    "CPython loads it, but no pickler produces it: values left on the stack at STOP (an "
    "injected call whose result is dropped), MARKs never closed, a second PROTO in the middle "
    "of the stream. Such edits are how payloads are spliced into real models.",
)
EXPANSION = threat(
    "MS-PKL-113",
    SUSPICIOUS,
    Severity.MEDIUM,
    "Pickle expands to an object graph far larger than itself",
    "Do not load or traverse this file; re-export the model from its source.",
    "Memo references (GET, DUP) let a few bytes build containers that hold themselves or each "
    "other many times over: a 'billion laughs' that exhausts memory or time in whatever walks "
    "the loaded object (printing, copying, serialising, comparing).",
)

# Incomplete codes (the rules turn these into ERROR, never ALLOWED).
INCOMPLETE_LIMIT = "MS-PKL-120"  # opcode / memo / stack limits
INCOMPLETE_UNSIZED_ARRAY = "MS-PKL-121"  # joblib array data that cannot be located
INCOMPLETE_PAYLOAD = "MS-PKL-122"  # nested payload too large to rebuild
