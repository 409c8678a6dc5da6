"""The classification of globals: allowlist first, denylist on every path, unknown otherwise."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from modelsec.pickle.allowlist import (
    DATA_ONLY,
    GENERATED_FILES,
    REFERENCE_FILES,
    _read_generated,
    reference_only,
    safe_globals,
)
from modelsec.pickle.denylist import Category, denied
from modelsec.pickle.names import GlobalName
from modelsec.pickle.policy import Verdict, classify


@pytest.mark.parametrize(
    "module, name",
    [
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch", "FloatStorage"),
        ("torch.nn.modules.linear", "Linear"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy", "dtype"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pcg64", "PCG64"),
        ("sklearn.tree._tree", "Tree"),
        ("sklearn._loss.loss", "HalfBinomialLoss"),
        ("sklearn._loss._loss", "CyHalfBinomialLoss"),
        ("pandas", "DataFrame"),
        ("pandas._libs.internals", "_unpickle_block"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("copy_reg", "_reconstructor"),
        ("__builtin__", "set"),
        ("builtins", "bytearray"),
        ("uuid", "UUID"),
        ("decimal", "Decimal"),
        ("datetime", "datetime"),
        ("scipy.sparse._csr", "csr_matrix"),
        ("types", "SimpleNamespace"),
        ("torch.serialization", "_get_layout"),
    ],
)
def test_safe(module: str, name: str) -> None:
    assert classify(module, name).verdict is Verdict.SAFE


@pytest.mark.parametrize(
    "module, name, category",
    [
        ("os", "system", Category.COMMAND),
        ("posix", "system", Category.COMMAND),
        ("nt", "spawnv", Category.COMMAND),
        ("subprocess", "Popen", Category.COMMAND),
        ("builtins", "eval", Category.CODE),
        ("__builtin__", "execfile", Category.CODE),
        ("builtins", "getattr", Category.IMPORT),
        ("importlib", "import_module", Category.IMPORT),
        ("operator", "attrgetter", Category.IMPORT),
        ("functools", "reduce", Category.TRAMPOLINE),
        ("_functools", "partial", Category.TRAMPOLINE),  # (functools.partial is listed, under a contract)
        ("builtins", "open", Category.FILE),
        ("shutil", "rmtree", Category.FILE),
        ("socket", "socket", Category.NETWORK),
        ("urllib.request", "urlopen", Category.NETWORK),
        ("pickle", "loads", Category.LOADER),
        ("torch", "load", Category.LOADER),
        ("numpy", "load", Category.LOADER),
        ("sys", "modules", Category.IMPORT),
        ("numpy.testing._private.utils", "runstring", Category.COMMAND),
        ("torch.utils.collect_env", "run", Category.COMMAND),
        ("copyreg", "add_extension", Category.IMPORT),
        ("copy_reg", "add_extension", Category.IMPORT),
        ("idlelib.pyshell", "ModifiedInterpreter.runcode", Category.CODE),
        ("uuid", "_get_command_stdout", Category.COMMAND),
        ("pathlib", "os.system", Category.FILE),
        ("sklearn.utils._testing", "assert_run_python_script", Category.COMMAND),
        ("commands", "getoutput", Category.COMMAND),
        ("json", "__main__", Category.CODE),
    ],
)
def test_dangerous(module: str, name: str, category: Category) -> None:
    c = classify(module, name)
    assert c.verdict is Verdict.DANGEROUS, c
    assert c.category is category, c


def test_unknown_and_data() -> None:
    assert classify("acme.models", "Net").verdict is Verdict.UNKNOWN
    assert classify("sklearn.utils", "deprecated").verdict is Verdict.UNKNOWN  # not whole packages
    assert classify("numpy", "memmap").verdict is Verdict.DATA
    # Generated functions are reference-only: a fitted object may keep them, a call is a finding.
    assert classify("numpy", "log1p").verdict is Verdict.DATA
    assert classify("torch", "float32").verdict is Verdict.DATA  # a constant: referenced, never called
    assert classify("sklearn.feature_selection._univariate_selection", "f_classif").verdict is Verdict.DATA
    assert classify("numpy.testing", "assert_equal").verdict is Verdict.DANGEROUS


def test_candidate_paths_cover_every_attribute_tail() -> None:
    assert GlobalName("pkg", "a.os.system").candidate_paths() == [
        "pkg.a.os.system",
        "a.os.system",
        "os.system",
        "system",
    ]
    assert GlobalName("torch.nn.modules.linear", "Linear").candidate_paths() == [
        "torch.nn.modules.linear.Linear",
        "Linear",
    ]


def test_dunder_attributes_reach_internals() -> None:
    assert denied("collections.OrderedDict.__init__.__globals__") is not None
    assert denied("acme.Model.__class__") is not None
    assert denied("copyreg.__newobj__") is not None  # copyreg itself is denied ...
    assert classify("copyreg", "__newobj__").verdict is Verdict.SAFE  # ... the allowlist wins
    assert denied("numpy.random._pickle.__randomstate_ctor") is None  # not a dunder


def test_python2_names_map_like_cpython() -> None:
    assert classify("__builtin__", "eval").path == "builtins.eval"
    assert classify("copy_reg", "_reconstructor").path == "copyreg._reconstructor"
    assert classify("__builtin__", "xrange").verdict is Verdict.SAFE  # builtins.range


def test_generated_lists_exist_and_hold_no_denied_name() -> None:
    for filename in GENERATED_FILES + REFERENCE_FILES:
        names = _read_generated(filename)
        assert len(names) > (20 if filename in GENERATED_FILES else 0), filename
        assert not [n for n in names if denied(n)], filename
    assert not DATA_ONLY & safe_globals()
    assert DATA_ONLY == reference_only()


def test_every_installed_sklearn_estimator_is_allowlisted() -> None:
    from sklearn.utils import all_estimators

    missing = [
        f"{cls.__module__}.{cls.__qualname__}"
        for _, cls in all_estimators()
        if classify(cls.__module__, cls.__qualname__).verdict is not Verdict.SAFE
    ]
    assert not missing, f"re-run hack/gen_pickle_allowlist.py: {missing[:10]}"


def test_hand_written_torch_names_are_not_whole_packages() -> None:
    safe = safe_globals()
    assert "torch.utils" not in safe and "torch.nn" not in safe and "torch" not in safe
    assert all(name.count(".") >= 1 for name in safe)
    assert not [n for n in safe if n.startswith(("torch.utils.", "torch.jit.", "numpy.testing."))]


def test_generated_functions_are_called_by_benign_pickles_and_reviewed() -> None:
    # A function in a generated allow list is one real pickles call at load time, proven
    # pure or reviewed in hack/pickle_reviewed_methods.txt; every other generated function
    # is reference-only (refs_<library>.txt) or, if it takes a callable, on no list.
    import importlib

    reviewed = (Path(__file__).resolve().parents[2] / "hack" / "pickle_reviewed_methods.txt").read_text()
    callable_functions = []
    for filename in GENERATED_FILES:
        for name in _read_generated(filename):
            module, _, attr = name.rpartition(".")
            try:
                obj = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError):
                continue
            if callable(obj) and not inspect.isclass(obj):
                callable_functions.append(name)
    assert callable_functions  # sklearn's newObj rebuild helpers
    assert [n for n in callable_functions if f"\n{n}  " not in reviewed] == []
    assert "sklearn.metrics._ranking.metric_at_thresholds" not in safe_globals()  # calls metric_func
    assert "sklearn.metrics._ranking.metric_at_thresholds" not in reference_only()


def test_denylist_ignores_case() -> None:
    # Windows with PYTHONCASEOK imports "OS" as os
    assert classify("OS", "system").verdict is Verdict.DANGEROUS
    assert classify("Subprocess", "Popen").verdict is Verdict.DANGEROUS
    assert classify("cprofile", "run").category is Category.CODE


def test_attribute_names_are_matched_exactly() -> None:
    assert classify("acme.models", "Profile").verdict is Verdict.UNKNOWN  # not the profile module
    assert classify("acme.models", "profile").verdict is Verdict.DANGEROUS  # a re-exported module
