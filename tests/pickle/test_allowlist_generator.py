"""The allowlist generator inspects code, not names; its output is reviewed in git.

* the committed ``allow_*``/``refs_*``/``classfacts_*`` files equal a fresh generation from
  the installed libraries (a library upgrade fails here until someone regenerates and
  reviews the diff);
* side-effecting classes (scikit-learn's ScoringMonitor opens a listener in
  ``__setstate__``) are not callable; helpers that call their arguments are on no list;
* the purity analysis, the reviewed-method hashes and the trampoline detection each decide
  what they claim, on small classes written here;
* the class facts the machine reads are right for the classes it meets most.

Nothing here unpickles anything: the generator follows the opcodes of pickles it produced.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import pickle
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

import gen_pickle_allowlist  # noqa: E402
from modelsec.pickle import classfacts  # noqa: E402
from modelsec.pickle.allowlist import reference_only, safe_globals  # noqa: E402
from modelsec.pickle.classfacts import ClassFactsError, class_facts, is_class  # noqa: E402
from pickle_allowlist import observe  # noqa: E402
from pickle_allowlist.inspect_class import Inspector  # noqa: E402
from pickle_allowlist.reviews import Review, load_reviews, parse_reviews, source_digest  # noqa: E402
from pickle_allowlist.trampoline import takes_callable  # noqa: E402

OUT = REPO / "src" / "modelsec" / "pickle"


@pytest.fixture(scope="module")
def generation() -> gen_pickle_allowlist.Generation:
    return gen_pickle_allowlist.generate()


# -- the committed files are what the installed libraries give ------------------------------


def test_committed_files_equal_a_fresh_generation(generation: gen_pickle_allowlist.Generation) -> None:
    stale = [name for name, text in generation.files.items() if (OUT / name).read_text() != text]
    assert not stale, (
        f"{stale}: run `.venv/bin/python hack/gen_pickle_allowlist.py`, read the report, "
        "review what changed (hack/pickle_reviewed_methods.txt) and commit the files"
    )
    committed = {p.name for p in OUT.glob("allow_*.txt")} | {p.name for p in OUT.glob("refs_*.txt")}
    committed |= {p.name for p in OUT.glob("classfacts_*.json")}
    assert committed == set(generation.files), "a generated file is committed but no longer produced"


def test_every_review_is_used_and_current(generation: gen_pickle_allowlist.Generation) -> None:
    report = "\n".join(generation.report)
    assert "== stale reviews (source changed; current digest) (0)" in report
    assert "== reviews no longer used (0)" in report


# -- side effects and trampolines ------------------------------------------------------------

SIDE_EFFECTS = {
    # __setstate__ reopens a multiprocessing listener (socket) when the pickled one is unusable
    "sklearn.callback._scoring_monitor.ScoringMonitor": "open_listener",
    # __init__ opens a listener per fit; RichProgressMonitor is a Thread
    "sklearn.callback._progressbar.ProgressBar": "decorated",
    "sklearn.callback._progressbar.RichProgressMonitor": "threading.Thread.__init__",
}


@pytest.mark.parametrize("path", sorted(SIDE_EFFECTS))
def test_side_effecting_classes_are_not_callable(
    generation: gen_pickle_allowlist.Generation, path: str
) -> None:
    decision = generation.decisions[path]
    assert decision.outcome == gen_pickle_allowlist.EXCLUDED, decision
    assert path not in safe_globals() and path not in reference_only()
    assert class_facts(path) is None


def test_scoring_monitor_setstate_is_unsafe_for_what_it_calls() -> None:
    from sklearn.callback._scoring_monitor import ScoringMonitor

    fact = Inspector(load_reviews()).fact(ScoringMonitor, "__setstate__")
    assert fact is not None and not fact.safe
    assert "can_reuse_listener" in fact.why or "open_listener" in fact.why, fact


@pytest.mark.parametrize(
    "path",
    [
        "sklearn.metrics._ranking.metric_at_thresholds",  # calls metric_func
        "sklearn.metrics.cluster._unsupervised.silhouette_samples",  # metric callable
        "sklearn.metrics.pairwise.pairwise_distances",
        "sklearn.metrics._scorer.make_scorer",
    ],
)
def test_metric_trampolines_are_not_callable(generation: gen_pickle_allowlist.Generation, path: str) -> None:
    assert path not in safe_globals()
    assert path not in reference_only()
    if path in generation.decisions:
        assert generation.decisions[path].outcome == gen_pickle_allowlist.EXCLUDED
        assert "takes a callable" in generation.decisions[path].reason


def test_score_functions_are_reference_only() -> None:
    for path in ("sklearn.feature_selection._univariate_selection.f_classif", "numpy.log1p"):
        assert path in reference_only() and path not in safe_globals()


def test_load_time_functions_are_the_observed_reviewed_ones(
    generation: gen_pickle_allowlist.Generation,
) -> None:
    called = {d.path for d in generation.decisions.values() if d.outcome == gen_pickle_allowlist.CALLABLE}
    functions = {p for p in called if not is_class(p)}
    assert "sklearn.neighbors._kd_tree.newObj" in functions
    assert functions <= set(generation.usage.called)  # only what real pickles call
    assert "sklearn.neighbors._kd_tree.newObj" in generation.usage.called


# -- the purity analysis ---------------------------------------------------------------------


def _judge(cls: type, name: str, reviews: dict[str, Review] | None = None) -> tuple[bool, str]:
    fact = Inspector(reviews or {}).fact(cls, name)
    assert fact is not None
    return fact.safe, fact.why


class _Pure:
    def __init__(self, a: int, *, b: str = "") -> None:
        self.a = a
        self.__dict__["b"] = b
        cache: dict[str, int] = {}
        cache.update(x=1)
        self._cache = cache

    def __setstate__(self, state: dict[str, object]) -> None:
        if not isinstance(state, dict):
            raise TypeError("state")
        self.__dict__.update(state)
        if not hasattr(self, "a"):
            self.a = len(self.__dict__)


class _Opens:
    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.log = open(str(state["path"]))  # noqa: SIM115 - the point of the test


class _CallsParameter:
    def __init__(self, factory: object) -> None:
        self.value = factory()  # type: ignore[operator]


class _CallsSelfMethod:
    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._rebuild()  # an instance attribute named _rebuild wins over the method

    def _rebuild(self) -> None:
        pass


class _ReadsProperty:
    @property
    def computed(self) -> int:
        return __import__("os").getpid()  # a property with an effect

    def __setstate__(self, state: dict[str, object]) -> None:
        self.x = self.computed


class _Base:
    def __setstate__(self, state: dict[str, object]) -> None:
        print("side effect")


class _SuperChain(_Base):
    def __setstate__(self, state: dict[str, object]) -> None:
        super().__setstate__(state)


def _wrap(fn):  # type: ignore[no-untyped-def]
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        return fn(*args, **kwargs)

    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper


class _Decorated:
    @_wrap
    def __init__(self) -> None:
        self.a = 1


@dataclasses.dataclass
class _DataClass:
    a: int = 0
    items: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _DataClassFactory:
    items: object = dataclasses.field(default_factory=lambda: __import__("os").getcwd())


@pytest.mark.parametrize(
    "cls, name, safe, reason",
    [
        (_Pure, "__init__", True, "pure"),
        (_Pure, "__setstate__", True, "pure"),
        (_Opens, "__setstate__", False, "calls open"),
        (_CallsParameter, "__init__", False, "calls its parameter factory"),
        (_CallsSelfMethod, "__setstate__", False, "calls self._rebuild"),
        (_ReadsProperty, "__setstate__", False, "reads property computed"),
        (_SuperChain, "__setstate__", False, "_Base.__setstate__"),
        (_Decorated, "__init__", False, "decorated"),
        (_DataClass, "__init__", True, "pure"),
        (_DataClassFactory, "__init__", False, "default_factory"),
        (collections.OrderedDict, "__setitem__", False, "compiled code, not reviewed"),
        (argparse.Namespace, "__init__", False, "setattr(self, <computed name>)"),
    ],
)
def test_purity_analysis(cls: type, name: str, safe: bool, reason: str) -> None:
    verdict, why = _judge(cls, name)
    assert verdict is safe, why
    assert reason in why, why


def test_builtin_owners_are_safe_and_objects_defaults_are_left_out() -> None:
    inspector = Inspector({})
    assert inspector.fact(_Pure, "__setattr__") is None  # object's
    fact = inspector.fact(collections.Counter, "__setitem__")
    assert fact is not None and (fact.owner, fact.safe, fact.why) == ("builtins.dict", True, "builtin")


# -- reviews ---------------------------------------------------------------------------------


def test_base_estimator_setstate_is_safe_only_through_its_review() -> None:
    from sklearn.base import BaseEstimator
    from sklearn.linear_model import LogisticRegression

    safe, why = _judge(LogisticRegression, "__setstate__")
    assert not safe and "calls" in why  # the analysis alone does not prove it
    reviews = load_reviews()
    assert "sklearn.base.BaseEstimator.__setstate__" in reviews
    assert _judge(LogisticRegression, "__setstate__", reviews) == (True, "reviewed")
    assert reviews["sklearn.base.BaseEstimator.__setstate__"].digest == source_digest(
        BaseEstimator.__setstate__
    )


def test_a_tampered_review_hash_makes_the_method_unsafe() -> None:
    from sklearn.linear_model import LogisticRegression

    reviews = load_reviews()
    real = reviews["sklearn.base.BaseEstimator.__setstate__"]
    tampered = dict(reviews)
    tampered[real.qualname] = Review(real.qualname, "sha256:" + "0" * 64, real.note)
    safe, why = _judge(LogisticRegression, "__setstate__", tampered)
    assert not safe and "stale" in why, why


def test_a_compiled_review_of_python_code_does_not_count() -> None:
    reviews = {
        f"{__name__}._Opens.__setstate__": Review(f"{__name__}._Opens.__setstate__", None, "wrong kind")
    }
    safe, why = _judge(_Opens, "__setstate__", reviews)
    assert not safe and "reviewed as compiled code, but it is Python" in why


def test_a_conditional_review_stays_unsafe_with_its_condition() -> None:
    qualname = f"{__name__}._Opens.__setstate__"
    reviews = {
        qualname: Review(qualname, source_digest(_Opens.__setstate__), "only if state['path'] is /dev/null")
    }
    assert _judge(_Opens, "__setstate__", reviews) == (
        False,
        "reviewed: safe only if state['path'] is /dev/null",
    )


def test_review_file_syntax_errors_are_reported() -> None:
    with pytest.raises(ValueError, match="line|:1:"):
        parse_reviews("a.b.c  md5:123  note\n")
    with pytest.raises(ValueError, match="twice"):
        parse_reviews("a.b  compiled  x\na.b  compiled  y\n")


def test_review_digest_covers_closure_values() -> None:
    def make(value: object):  # type: ignore[no-untyped-def]
        def f() -> object:
            return value

        return f

    assert source_digest(make(1)) != source_digest(make(2))


# -- trampolines -----------------------------------------------------------------------------


def _calls_argument(x: object, metric: object) -> object:
    return metric(x)  # type: ignore[operator]


def _documented(x: object, metric: object = "euclidean") -> object:
    """Distance.

    Parameters
    ----------
    x : array-like
        Data.
    metric : str or callable
        Passed on to a helper that calls it.
    """
    return (x, metric)


def _plain(x: object) -> object:
    """Parameters
    ----------
    x : array-like
    """
    return x


def test_trampoline_detection() -> None:
    assert takes_callable(_calls_argument) == "calls its parameter metric"
    assert takes_callable(_documented) == "parameter metric is documented as callable"
    assert takes_callable(_plain) is None


# -- the stack simulation of benign pickles --------------------------------------------------


def test_observation_tells_calls_from_references() -> None:
    usage = observe.Usage()
    value = {
        "ns": types.SimpleNamespace(a=1),
        "od": collections.OrderedDict(a=1),
        "func": _plain,
        "dq": collections.deque([1, 2]),
    }
    for protocol in (0, 2, 5):
        observe.follow(pickle.dumps(value, protocol=protocol), usage)
    assert "types.SimpleNamespace" in usage.called  # REDUCE(SimpleNamespace, ())
    assert "types.SimpleNamespace" in usage.built  # BUILD with its __dict__
    assert "collections.OrderedDict" in usage.filled
    assert {"APPEND", "APPENDS"} & usage.filled["collections.deque"]
    assert f"{__name__}._plain" in usage.referenced and f"{__name__}._plain" not in usage.called


def test_observation_fails_loudly_on_an_unknown_opcode() -> None:
    follower = observe._Follower(observe.Usage())
    with pytest.raises(ValueError, match="no stack effect known"):
        follower.step("FUTURE_OPCODE", None)


# -- the facts the machine reads ---------------------------------------------------------------


def _methods(path: str) -> dict[str, tuple[str, bool]]:
    facts = class_facts(path)
    assert facts is not None, path
    return {name: (fact.owner, fact.safe) for name, fact in facts.methods.items()}


def test_facts_ordered_dict() -> None:
    facts = class_facts("collections.OrderedDict")
    assert facts is not None
    assert (facts.builtin_base, facts.instance_dict, facts.dynamic_getattr) == ("dict", True, False)
    assert _methods("collections.OrderedDict")["__setitem__"] == ("collections.OrderedDict", True)
    assert _methods("collections.OrderedDict")["__new__"] == ("builtins.dict", True)


def test_facts_namespaces_have_writable_instance_dicts() -> None:
    simple = class_facts("types.SimpleNamespace")
    argparse_ns = class_facts("argparse.Namespace")
    assert simple is not None and argparse_ns is not None
    assert (simple.builtin_base, simple.instance_dict, simple.dynamic_getattr) == ("other", True, False)
    assert (argparse_ns.builtin_base, argparse_ns.instance_dict) == ("object", True)
    assert "__setstate__" not in argparse_ns.methods  # BUILD fills __dict__ directly


def test_facts_bunch_computes_attribute_lookups() -> None:
    bunch = class_facts("sklearn.utils._bunch.Bunch")
    assert bunch is not None
    assert (bunch.builtin_base, bunch.instance_dict, bunch.dynamic_getattr) == ("dict", True, True)
    assert bunch.methods["__setattr__"].owner == "sklearn.utils._bunch.Bunch"  # stores items
    assert bunch.methods["__setitem__"].why == "builtin"


def test_facts_deque() -> None:
    deque = class_facts("collections.deque")
    assert deque is not None
    assert (deque.builtin_base, deque.instance_dict, deque.dynamic_getattr) == ("other", False, False)
    assert {"append", "extend", "__setitem__"} <= set(deque.methods)


def test_facts_sklearn_estimator() -> None:
    path = "sklearn.linear_model._logistic.LogisticRegression"
    facts = class_facts(path)
    assert facts is not None
    assert (facts.builtin_base, facts.instance_dict, facts.dynamic_getattr) == ("object", True, False)
    assert _methods(path) == {
        "__init__": (path, True),
        "__setstate__": ("sklearn.base.BaseEstimator", True),
    }
    assert facts.methods["__setstate__"].why == "reviewed"


def test_facts_ndarray() -> None:
    facts = class_facts("numpy.ndarray")
    assert facts is not None
    assert (facts.builtin_base, facts.instance_dict, facts.dynamic_getattr) == ("other", False, False)
    assert _methods("numpy.ndarray")["__setstate__"] == ("numpy.ndarray", True)


def test_facts_torch_module() -> None:
    module = class_facts("torch.nn.modules.module.Module")
    linear = class_facts("torch.nn.modules.linear.Linear")
    assert module is not None and linear is not None
    assert (module.builtin_base, module.instance_dict, module.dynamic_getattr) == ("object", True, True)
    # Module.__setstate__ can reach self.register_parameter: reviewed with a condition
    # (tests/pickle/test_classfacts_torch.py has the rest of the torch facts)
    assert not module.methods["__setstate__"].safe and not module.methods["__setattr__"].safe
    assert module.methods["__setstate__"].why.startswith("reviewed: safe only if")
    assert linear.methods["__setstate__"].owner == "torch.nn.modules.module.Module"
    assert class_facts("torch.Tensor") is class_facts("torch._tensor.Tensor")


def test_facts_unknowns_and_functions_are_not_classes() -> None:
    assert class_facts("acme.models.Net") is None
    assert not is_class("numpy._core.multiarray._reconstruct")
    assert not is_class("sklearn.neighbors._kd_tree.newObj")


def _callable_classes() -> Iterator[str]:
    for path in sorted(safe_globals()):
        if path.startswith("torch"):
            continue  # not installed: hand-written facts, checked below
        obj = gen_pickle_allowlist.resolve(path)
        if isinstance(obj, type):
            yield path


def test_every_callable_class_has_facts_under_every_name_the_allowlist_uses() -> None:
    missing = [path for path in _callable_classes() if not is_class(path)]
    assert not missing, missing[:10]
    torch_classes = [p for p in safe_globals() if p.startswith("torch.nn.modules.")]
    assert torch_classes and all(is_class(p) for p in torch_classes)


def test_every_committed_class_fact_parses() -> None:
    """Entries are parsed when a stream first names their class (start-up, issue 14): a
    malformed one would fail only the scans that name it, so all of them are parsed here."""
    parsed = {path: classfacts.class_facts(path) for path in classfacts.known_classes()}
    assert len(parsed) > 1000 and all(facts is not None for facts in parsed.values())
    alias = "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper"
    assert parsed[alias] is parsed["joblib.numpy_pickle.NumpyArrayWrapper"]
    assert parsed[alias].path == "joblib.numpy_pickle.NumpyArrayWrapper"  # the defining path


def test_malformed_facts_are_an_error_not_a_pass() -> None:
    with pytest.raises(ClassFactsError, match="bad entry"):
        classfacts._parse("x.json", "a.B", {"builtin_base": "object", "methods": {}})
    with pytest.raises(ClassFactsError, match="builtin_base"):
        classfacts._parse(
            "x.json",
            "a.B",
            {"builtin_base": "list2", "instance_dict": True, "dynamic_getattr": False, "methods": {}},
        )
    with pytest.raises(ClassFactsError, match="implicit"):
        classfacts._parse(
            "x.json",
            "a.B",
            {
                "builtin_base": "list",
                "instance_dict": True,
                "dynamic_getattr": False,
                "methods": {"__reduce__": ["a.B", True, "pure"]},
            },
        )


def test_generator_report_names_what_it_excluded(generation: gen_pickle_allowlist.Generation) -> None:
    report = "\n".join(generation.report)
    assert "sklearn.callback._scoring_monitor.ScoringMonitor:" in report
    assert "functions real pickles call at load time" in report
