"""The per-source bound on nested scans (modelsec.pickle.nested_budget): a file that asks
for more loader payloads than the bound gets the rest reported as not inspected."""

from __future__ import annotations

from pklbuild import (
    REDUCE,
    STOP,
    TUPLE1,
    binbytes,
    binint,
    call,
    proto,
    scan,
    stack_global,
    subjects,
    summary,
    v4,
)

from modelsec.pickle.nested_budget import MAX_NESTED_SCANS

MALICIOUS = v4(call("os", "system", "id"))


def loads_calls(payloads: list[bytes]) -> bytes:
    """One stream calling ``pickle.loads`` on each payload in turn (each a literal slice of
    the file, so the byte budget is not what stops them)."""
    calls = b"".join(stack_global("pickle", "loads") + binbytes(p) + TUPLE1 + REDUCE + b"0" for p in payloads)
    return proto(4) + calls + b"N" + STOP


def benign(n: int) -> list[bytes]:
    return [v4(binint(i)) for i in range(n)]  # distinct literals: each is its own nested scan


def test_the_last_payload_within_the_bound_is_scanned() -> None:
    result = scan(loads_calls([*benign(MAX_NESTED_SCANS - 1), MALICIOUS]))
    assert not result.incompletes, summary(result)
    assert "os.system" in {f.subject for f in result.findings if "!" in f.file}, summary(result)


def test_payloads_past_the_bound_are_reported_not_inspected() -> None:
    result = scan(loads_calls([*benign(MAX_NESTED_SCANS), MALICIOUS]))
    reasons = [i.reason for i in result.incompletes if i.code == "MS-PKL-120"]
    assert reasons == [
        f"more than {MAX_NESTED_SCANS} nested pickles in one file; the rest were not inspected"
    ], summary(result)
    assert "os.system" not in {f.subject for f in result.findings if "!" in f.file}
    assert "pickle.loads" in subjects(result, "MS-PKL-102")  # the loader itself is still reported
