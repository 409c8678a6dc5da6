"""Globals that must never be imported by a model pickle, by what they give an attacker.

Each entry is a dotted prefix: ``os`` covers every ``os.*``; ``builtins.eval`` covers
exactly that function (and attributes reached through it). The list is the union of what
the public gadget collections use (picklescan's GHSA advisories, ModelScan, fickling,
ModelAudit) plus the stdlib and ML-library modules that hold command runners, code runners,
import resolvers, file and network access and nested deserialisers. It is a second line of
defence: the allowlist decides what is safe, this list decides what is *critical* rather
than merely unknown.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Category(str, enum.Enum):
    COMMAND = "command execution"
    CODE = "code execution"
    IMPORT = "import or attribute access"
    FILE = "file system access"
    NETWORK = "network access"
    LOADER = "nested deserialiser"
    INTERPRETER = "interpreter internals"
    TRAMPOLINE = "call trampoline"


_ENTRIES: dict[Category, tuple[str, ...]] = {
    Category.COMMAND: (
        "os",
        "posix",
        "nt",
        "subprocess",
        "_posixsubprocess",
        "pty",
        "commands",
        "popen2",
        "platform",
        "asyncio",
        "multiprocessing",
        "concurrent.futures",
        "_winapi",
        "msvcrt",
        "winreg",
        "_winreg",
        "webbrowser",
        "mailcap",
        "_aix_support",
        "_osx_support",
        "uuid._get_command_stdout",
        "uuid._popen",
        "uuid._find_mac",
        "uuid._find_mac_near_keyword",
        "uuid._find_mac_under_heading",
        "uuid._ifconfig_getnode",
        "uuid._ip_getnode",
        "uuid._arp_getnode",
        "uuid._lanscan_getnode",
        "uuid._netstat_getnode",
        "uuid._ipconfig_getnode",
        "uuid._netbios_getnode",
        "uuid._unix_getnode",
        "uuid.getnode",
        "distutils",
        "_distutils_hack",
        "setuptools",
        "pkg_resources",
        "pip",
        "venv",
        "ensurepip",
        "zipapp",
        "compileall",
        "py_compile",
        "test",
        "lib2to3",
        "tkinter",
        "_tkinter",
        "Tkinter",
        "turtle",
        "turtledemo",
        "joblib.externals",
        "joblib.parallel",
        "joblib._parallel_backends",
        "torch.utils",
        "torch._inductor",
        "torch.distributed",
        "torch.multiprocessing",
        "torch.backends",
        "torch.cuda.memory",
        "numpy.distutils",
        "numpy.f2py",
        "numpy.testing",
        "numpy.ctypeslib",
        "scipy._lib._testutils",
        "sklearn.utils._testing",
        "sklearn.datasets",
    ),
    Category.CODE: (
        "builtins.eval",
        "builtins.exec",
        "builtins.compile",
        "builtins.execfile",
        "builtins.breakpoint",
        "builtins.input",
        "builtins.help",
        "builtins.exit",
        "builtins.quit",
        "builtins.copyright",
        "builtins.credits",
        "builtins.license",
        "builtins.apply",
        "builtins.reload",
        "builtins.map",
        "builtins.filter",
        "code",
        "codeop",
        "runpy",
        "timeit",
        "cProfile",
        "profile",
        "pstats",
        "pdb",
        "bdb",
        "trace",
        "doctest",
        "pydoc",
        "_pyrepl",
        "idlelib",
        "rlcompleter",
        "_sitebuiltins",
        "site",
        "types",
        "marshal",
        "_marshal",
        "ctypes",
        "_ctypes",
        "cffi",
        "dill",
        "cloudpickle",
        "jinja2",
        "mako",
        "numexpr",
        "pandas.eval",
        "pandas.core.computation",
        "numpy.frompyfunc",
        "numpy.vectorize",
        "torch._dynamo",
        "torch.jit",
        "torch.fx",
        "torch._export",
        "torch.export",
        "torch.compiler",
        "torch.package",
        "torch.hub",
        "torch.library",
        "torch.ops",
        "torch._ops",
        "torch.classes",
        "torch.testing",
        "torch._C._jit_compile",
        "torch._C.import_ir_module",
        "torch._C._import_ir_module_from_package",
        "torch._C._load_for_lite_interpreter",
        "torch._utils._import_dotted_name",
        "torch.fx.experimental.symbolic_shapes",
        "scipy.weave",
    ),
    Category.IMPORT: (
        "builtins.__import__",
        "builtins.getattr",
        "builtins.setattr",
        "builtins.delattr",
        "builtins.globals",
        "builtins.locals",
        "builtins.vars",
        "builtins.__loader__",
        "builtins.__spec__",
        "importlib",
        "_frozen_importlib",
        "_frozen_importlib_external",
        "_imp",
        "imp",
        "pkgutil",
        "zipimport",
        "modulefinder",
        "inspect",
        "operator",
        "_operator",
        "copyreg",
        "copy",
        "sys",
    ),
    Category.TRAMPOLINE: (
        "functools",
        "_functools",
        "itertools",
        "weakref.finalize",
        "sched",
        "contextlib",
        "threading",
        "_thread",
        "atexit",
        "signal",
    ),
    Category.FILE: (
        "builtins.open",
        "builtins.file",
        "io.open",
        "io.open_code",
        "io.FileIO",
        "io.BufferedReader",
        "io.BufferedWriter",
        "io.BufferedRandom",
        "io.BufferedRWPair",
        "io.TextIOWrapper",
        "_io.open",
        "_io.open_code",
        "_io.FileIO",
        "_io.BufferedReader",
        "_io.BufferedWriter",
        "_io.BufferedRandom",
        "_io.BufferedRWPair",
        "_io.TextIOWrapper",
        "codecs.open",
        "codecs.EncodedFile",
        "pathlib",
        "shutil",
        "tempfile",
        "glob",
        "fileinput",
        "filecmp",
        "linecache",
        "tarfile",
        "zipfile",
        "gzip.open",
        "bz2.open",
        "lzma.open",
        "dbm",
        "sqlite3",
        "_sqlite3",
        "mmap",
        "fcntl",
        "resource",
        "pwd",
        "grp",
        "spwd",
        "crypt",
        "termios",
        "logging.FileHandler",
        "logging.handlers",
        "logging.config",
        "logging.basicConfig",
        "numpy.save",
        "numpy.savez",
        "numpy.savez_compressed",
        "numpy.savetxt",
        "numpy.fromfile",
        "numpy.loadtxt",
        "numpy.genfromtxt",
        "numpy.memmap",
        "numpy.lib.npyio",
        "numpy.lib.format",
        "numpy.lib._npyio_impl",
        "numpy.lib.format.open_memmap",
        "pandas.io",
        "pandas.read_csv",
        "pandas.read_excel",
        "pandas.read_json",
        "pandas.read_html",
        "pandas.read_sql",
        "pandas.read_parquet",
        "pandas.read_feather",
        "pandas.read_hdf",
        "pandas.read_table",
        "pandas.read_fwf",
        "pandas.read_xml",
        "pandas.read_orc",
        "pandas.read_sas",
        "pandas.read_spss",
        "pandas.read_stata",
        "pandas.read_clipboard",
        "pandas.HDFStore",
        "pandas.ExcelWriter",
        "pandas.ExcelFile",
        "scipy.io",
    ),
    Category.NETWORK: (
        "socket",
        "_socket",
        "ssl",
        "urllib",
        "urllib2",
        "urllib3",
        "http",
        "httplib",
        "requests",
        "httpx",
        "aiohttp",
        "ftplib",
        "smtplib",
        "smtpd",
        "telnetlib",
        "imaplib",
        "poplib",
        "nntplib",
        "xmlrpc",
        "xmlrpclib",
        "SimpleXMLRPCServer",
        "socketserver",
        "SocketServer",
        "asyncore",
        "asynchat",
        "wsgiref",
        "paramiko",
        "fabric",
        "boto3",
        "botocore",
        "huggingface_hub",
    ),
    Category.LOADER: (
        "pickle",
        "_pickle",
        "cPickle",
        "pickle5",
        "shelve",
        "joblib.load",
        "joblib.numpy_pickle.load",
        "joblib.numpy_pickle.NumpyUnpickler",
        "joblib.numpy_pickle_compat.load_compatibility",
        "joblib.numpy_pickle_compat.read_zfile",
        "torch.load",
        "torch.serialization",
        "torch.storage._load_from_bytes",
        "numpy.load",
        "numpy.lib.npyio.load",
        "numpy.lib.format.read_array",
        "pandas.read_pickle",
        "yaml.load",
        "yaml.load_all",
        "yaml.unsafe_load",
        "yaml.unsafe_load_all",
        "yaml.full_load",
        "yaml.full_load_all",
        "yaml.Loader",
        "yaml.UnsafeLoader",
        "yaml.FullLoader",
        "jsonpickle",
        "keras.models.load_model",
        "keras.saving",
        "tensorflow.keras.models.load_model",
        "tensorflow.saved_model.load",
    ),
    Category.INTERPRETER: (
        "gc",
        "faulthandler",
        "tracemalloc",
        "ctypes.pythonapi",
        "sysconfig",
        "antigravity",
        "builtins.object.__subclasses__",
    ),
}

# Attribute names that reach interpreter internals from any object: ``x.__globals__``,
# ``cls.__subclasses__``, ``mod.__dict__``. Only the two copyreg helpers that real pickles
# name are exempt.
_EXEMPT_DUNDERS = frozenset({"__newobj__", "__newobj_ex__"})

DENYLIST: dict[str, Category] = {
    prefix: category for category, prefixes in _ENTRIES.items() for prefix in prefixes
}
# Matched case-insensitively: on Windows with PYTHONCASEOK set, "OS" imports os.
_FOLDED: dict[str, tuple[str, Category]] = {
    prefix.casefold(): (prefix, category) for prefix, category in DENYLIST.items()
}


@dataclass(frozen=True)
class Denial:
    """The denylist entry that makes a dotted path dangerous, and its category."""

    path: str  # the entry (or dunder path) that matched
    category: Category


def denied(path: str, module_parts: int = 0) -> Denial | None:
    """The entry that makes ``path`` dangerous, or None.

    The first ``module_parts`` components are a module name and match case-insensitively
    (Windows with PYTHONCASEOK imports "OS" as os); attribute names never do (getattr is
    exact). Besides prefix entries: any dunder attribute after the first component
    (``X.__dict__``, ``f.__globals__``) and any ``pkg.__main__`` module (importing an entry
    point runs it; many have no ``if __name__`` guard) is dangerous.
    """
    parts = path.split(".")
    for end in range(len(parts), 0, -1):  # the most specific entry decides the category
        prefix = ".".join(parts[:end])
        category = DENYLIST.get(prefix)
        if category is not None:
            return Denial(prefix, category)
        if end <= module_parts and (hit := _FOLDED.get(prefix.casefold())) is not None:
            return Denial(*hit)
    for index, part in enumerate(parts[1:], start=1):
        dunder = len(part) > 4 and part.startswith("__") and part.endswith("__")
        if dunder and part not in _EXEMPT_DUNDERS:
            reached = ".".join(parts[: index + 1])
            kind = Category.CODE if part == "__main__" else Category.IMPORT
            return Denial(reached, kind)
    return None
