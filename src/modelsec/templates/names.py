"""Name catalogues for the static template analysis: which attribute names, globals and
string constants mark a template as reaching outside the data it is meant to format.

The lists follow how Jinja sandbox escapes work: every escape needs a handle on a Python
object's internals (a dunder or private attribute, or a function's frame/globals), and every
payload then names a module or builtin that runs code. Jinja's own sandbox refuses any
attribute starting with ``_`` plus the non-underscore names in :data:`UNSAFE_ATTRIBUTES`;
we flag the same set, whatever environment the template will really be rendered in.
"""

from __future__ import annotations

import enum
import re

# Attributes that are unsafe without a leading underscore (jinja2.sandbox UNSAFE_* sets,
# plus the Python 2 spellings that old payloads still use).
UNSAFE_ATTRIBUTES = frozenset(
    {
        "mro",
        "func_globals",
        "func_code",
        "func_closure",
        "func_defaults",
        "func_dict",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_back",
        "f_code",
        "f_trace",
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "gi_running",
        "cr_frame",
        "cr_code",
        "cr_await",
        "cr_origin",
        "ag_frame",
        "ag_code",
        "ag_await",
        "tb_frame",
        "tb_next",
        "tb_lasti",
        "co_code",
        "co_consts",
        "co_names",
        "im_func",
        "im_self",
        "im_class",
    }
)

# Names of modules, builtins and functions that run code, open files or reach the process
# environment. Flagged as an attribute or item name (``x.os``, ``g['popen']``) and as a free
# variable (``{{ eval(...) }}``): a chat template has no use for any of them.
CODE_EXECUTION_NAMES = frozenset(
    {
        "os",
        "sys",
        "subprocess",
        "builtins",
        "importlib",
        "posix",
        "nt",
        "pty",
        "socket",
        "shutil",
        "ctypes",
        "pickle",
        "marshal",
        "commands",
        "popen2",
        "popen",
        "spawnl",
        "spawnle",
        "spawnlp",
        "spawnv",
        "spawnve",
        "spawnvp",
        "posix_spawn",
        "execl",
        "execle",
        "execlp",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "eval",
        "exec",
        "execfile",
        "compile",
        "environ",
        "getenv",
        "putenv",
        "modules",
        "import_module",
        "load_module",
        "exec_module",
        "check_output",
        "check_call",
        "getoutput",
        "getstatusoutput",
        "Popen",
        "urlopen",
        "urlretrieve",
        "globals",
        "locals",
        "vars",
        "getattr",
        "setattr",
        "delattr",
        "unlink",
        "rmtree",
        "fork",
        "forkpty",
        "kill",
        "killpg",
    }
)

# Attribute names that are only alarming when called (``x.system('id')``): as plain
# attributes or keys they are ordinary words (``message.system``).
DANGEROUS_WHEN_CALLED = frozenset(
    {
        "system",
        "open",
        "remove",
        "rmdir",
        "call",
        "run",
        "read_text",
        "write_text",
        "write_bytes",
        "read_bytes",
    }
)

# Free variables that only exist in payloads: Python builtins and modules Jinja does not
# provide. If an application ever exposed one, the template would run code with it.
DANGEROUS_FREE_NAMES = CODE_EXECUTION_NAMES | frozenset(
    {
        "open",
        "file",
        "input",
        "breakpoint",
        "exit",
        "quit",
        "help",
        "chr",
        "ord",
        "hasattr",
        "type",
        "object",
        "super",
        "memoryview",
        "bytearray",
        "classmethod",
        "staticmethod",
        "property",
        "urllib",
        "requests",
        "httpx",
        "base64",
        "codecs",
    }
)

# Jinja's default globals. Called (``namespace(found=false)``, ``range(3)``) they are how
# templates are written; used as objects (``cycler.__init__``, ``lipsum|string``) they are
# the classic handles from which escapes start.
JINJA_GADGETS = frozenset({"cycler", "joiner", "namespace", "lipsum", "range", "dict"})

# Web-framework context (Flask/Django-style server-side template injection). A chat template
# is rendered with messages and tokens, never with a request or application config.
WEB_GLOBALS = frozenset({"config", "request", "session", "url_for", "get_flashed_messages"})

# Mutating methods: a call through one changes the value bound to a variable after the fact
# (``{% do parts.append('_') %}``), which flow-insensitive constant folding would miss.
MUTATING_METHODS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "pop",
        "remove",
        "update",
        "setdefault",
        "clear",
        "sort",
        "reverse",
        "add",
        "discard",
        "popitem",
        "__setitem__",
    }
)

DUNDER = re.compile(r"^__\w+__$")
# Dunders that are the working parts of known escapes; found anywhere inside a string
# constant they are a payload (``'__import__("os")'`` passed to eval, a format field ...).
ESCAPE_DUNDERS = (
    "__class__",
    "__base__",
    "__bases__",
    "__mro__",
    "__subclasses__",
    "__globals__",
    "__builtins__",
    "__import__",
    "__init__",
    "__dict__",
    "__getattribute__",
    "__code__",
    "__closure__",
    "__func__",
    "__self__",
    "__reduce__",
    "__reduce_ex__",
    "__loader__",
    "__getitem__",
    "__call__",
    "__new__",
    "__module__",
    "__spec__",
    "__wrapped__",
)
_ESCAPE_DUNDER_RE = re.compile("|".join(re.escape(d) for d in ESCAPE_DUNDERS))


class NameRisk(enum.Enum):
    SAFE = "safe"
    DUNDER = "dunder"  # __class__ and friends: Python internals
    PRIVATE = "private"  # _module, _TemplateReference__context: sandbox-unsafe
    UNSAFE = "unsafe"  # mro, func_globals, gi_frame: internals without underscores
    CODE = "code"  # os, popen, eval, environ: running code or reading the environment


def attribute_risk(name: str) -> NameRisk:
    """How dangerous it is for a template to look up attribute (or key) ``name``."""
    if name.startswith("_"):
        return NameRisk.DUNDER if DUNDER.match(name) else NameRisk.PRIVATE
    if name in UNSAFE_ATTRIBUTES:
        return NameRisk.UNSAFE
    if name in CODE_EXECUTION_NAMES:
        return NameRisk.CODE
    return NameRisk.SAFE


def escape_dunder_in(text: str) -> str | None:
    """The first escape dunder contained in ``text``, or None."""
    match = _ESCAPE_DUNDER_RE.search(text)
    return match.group(0) if match else None
