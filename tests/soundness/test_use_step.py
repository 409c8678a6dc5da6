"""The oracle's use step and the mutation campaign (benchmarks/use_campaign.py).

A model whose compiled code trusts an index loads cleanly and crashes when used: the
oracle now uses what it loaded (soundness_use.exercise) in its confined child, and
genuine models with one integer changed (soundness_mutants) are the candidates. Generated
here, loaded only by the oracle.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

import numpy as np
import pytest
from soundness_judge import Scanner
from soundness_mutants import genuine_models, mutants, sites
from soundness_oracle import Oracle


def crashed(oracle: Oracle, data: bytes) -> str | None:
    return oracle.run(data, "model.pkl").crash


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    with Oracle(timeout=10.0, cpu_seconds=10, loaders=("pickle",), use=True) as instance:
        yield instance


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    instance = Scanner()
    yield instance
    instance.close()


def forged_csr() -> bytes:
    import scipy.sparse as sp

    matrix = sp.random(6, 5, density=0.5, format="csr", random_state=0)
    indptr = matrix.indptr.copy()
    indptr[-1] = -(2**31)  # the campaign's first hole: a wrapped difference read as increasing
    matrix.indptr = indptr  # set in this process, never used here
    return pickle.dumps(matrix, protocol=4)


def forged_dia() -> bytes:
    matrix = genuine_models()["dia matrix"]()
    offsets = matrix.offsets.copy()
    offsets[-1] = 2**31 - 1  # the second hole: dia_matvec adds it to the row count, which wraps
    matrix.offsets = offsets
    return pickle.dumps(matrix, protocol=4)


@pytest.mark.parametrize("forged, genuine", [(forged_csr, "csr matrix"), (forged_dia, "dia matrix")])
def test_the_use_step_crashes_on_a_forged_matrix(
    oracle: Oracle, forged: Callable[[], bytes], genuine: str
) -> None:
    assert crashed(oracle, forged())
    assert not crashed(oracle, pickle.dumps(genuine_models()[genuine](), protocol=4))


@pytest.mark.parametrize("forged", [forged_csr, forged_dia])
def test_indexes_the_kernels_wrap_are_violations(scanner: Scanner, forged: Callable[[], bytes]) -> None:
    verdict = scanner.verdict(forged(), "model.pkl")
    assert verdict.outcome == "BLOCKED" and "MS-PKL-107" in verdict.codes


def test_every_genuine_model_has_sites_and_is_allowed(scanner: Scanner) -> None:
    for name, make in genuine_models().items():
        model = make()
        assert list(sites(model)), name
        assert scanner.verdict(pickle.dumps(model, protocol=4), "model.pkl").outcome == "ALLOWED", name


@pytest.mark.parametrize(
    "name", ["decision tree", "kd tree", "csr matrix", "dia matrix", "lil matrix", "one-hot encoder"]
)
def test_no_allowed_mutant_crashes_in_use(name: str, scanner: Scanner, oracle: Oracle) -> None:
    rng = np.random.default_rng(7)
    holes = [
        (m.where, m.value)
        for m in mutants(name, genuine_models()[name], rng, 12)
        if scanner.verdict(m.data, "model.pkl").outcome == "ALLOWED" and crashed(oracle, m.data)
    ]
    assert holes == []
