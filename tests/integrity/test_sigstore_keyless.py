"""Keyless (Sigstore) model signatures verified offline: identities, issuers and a trusted
root from the group's parameters, against a Sigstore instance whose keys the test made
(sigstore_instance.py); through the SignatureVerified rule on a scanned model."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sigstore_instance import SigstoreInstance

from modelsec.engine import Engine
from modelsec.policy import Outcome, evaluate, parse_group
from modelsec.rules.base import EvaluationInput, RuleResult
from modelsec.sources import parse_model_uri, scan_model

ALICE = {"identity": "alice@example.com", "issuer": "https://accounts.example.com"}
FILES = {"config.json": b'{"architectures": ["BertModel"]}', "tokenizer/vocab.txt": b"[PAD]\nhello\n"}


@pytest.fixture(scope="module")
def instance() -> SigstoreInstance:
    return SigstoreInstance.create()


@pytest.fixture
def model(tmp_path: Path, instance: SigstoreInstance) -> Path:
    root = tmp_path / "model"
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    instance.sign_model(root, ALICE["identity"], ALICE["issuer"])
    return root


def judge(model: Path, **params: Any) -> Any:
    group = parse_group({"rules": [{"name": "SignatureVerified", "params": params}]}, "test", "keyless")
    scanned = scan_model(parse_model_uri(str(model)), Engine())
    verdict = evaluate(group, EvaluationInput(scanned.report, scanned.source_type, scanned.metadata))
    (rule,) = verdict.rules
    return verdict, rule


def test_a_trusted_identity_from_a_trusted_root_passes(
    model: Path, instance: SigstoreInstance, tmp_path: Path
) -> None:
    root_file = tmp_path / "trusted_root.json"
    root_file.write_text(instance.trusted_root())
    verdict, rule = judge(model, sigstoreIdentities=[ALICE], sigstoreTrustedRootFile=str(root_file))
    assert verdict.outcome is Outcome.ALLOWED, rule.message
    assert "alice@example.com" in rule.message
    # inline, as a SecurityGroup in the cluster carries it
    verdict, rule = judge(model, sigstoreIdentities=[ALICE], sigstoreTrustedRoot=instance.trusted_root())
    assert verdict.outcome is Outcome.ALLOWED, rule.message


def test_a_client_trust_config_is_accepted(model: Path, instance: SigstoreInstance) -> None:
    config = json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": json.loads(instance.trusted_root()),
            "signingConfig": {"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json"},
        }
    )
    verdict, rule = judge(model, sigstoreIdentities=[ALICE], sigstoreTrustedRoot=config)
    assert verdict.outcome is Outcome.ALLOWED, rule.message


@pytest.mark.parametrize(
    ("identity", "why"),
    [
        ({"identity": "mallory@example.com", "issuer": ALICE["issuer"]}, "0 of 1 policies succeeded"),
        (
            {"identity": ALICE["identity"], "issuer": "https://other-issuer.example.com"},
            "0 of 1 policies succeeded",
        ),
    ],
)
def test_another_identity_or_issuer_is_wrongly_signed(
    model: Path, instance: SigstoreInstance, identity: dict[str, str], why: str
) -> None:
    verdict, rule = judge(model, sigstoreIdentities=[identity], sigstoreTrustedRoot=instance.trusted_root())
    assert verdict.outcome is Outcome.BLOCKED
    (violation,) = rule.violations
    assert violation.threat == "MS-SIG-002" and why in violation.message


def test_any_listed_identity_may_sign(model: Path, instance: SigstoreInstance) -> None:
    bob = {"identity": "bob@example.com", "issuer": ALICE["issuer"]}
    verdict, rule = judge(model, sigstoreIdentities=[bob, ALICE], sigstoreTrustedRoot=instance.trusted_root())
    assert verdict.outcome is Outcome.ALLOWED, rule.message


def test_another_sigstore_instance_is_not_trusted(model: Path) -> None:
    stranger = SigstoreInstance.create("stranger")
    verdict, rule = judge(model, sigstoreIdentities=[ALICE], sigstoreTrustedRoot=stranger.trusted_root())
    assert verdict.outcome is Outcome.BLOCKED
    assert rule.violations[0].threat == "MS-SIG-002"
    assert "certificate chain" in rule.violations[0].message


def test_a_changed_file_fails_after_a_valid_keyless_signature(
    model: Path, instance: SigstoreInstance
) -> None:
    (model / "config.json").write_bytes(b'{"auto_map": {"AutoModel": "evil.Model"}}')
    verdict, rule = judge(model, sigstoreIdentities=[ALICE], sigstoreTrustedRoot=instance.trusted_root())
    assert verdict.outcome is Outcome.BLOCKED
    assert [(v.threat, v.subject) for v in rule.violations] == [("MS-SIG-003", "config.json")]


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _corrupt_note(envelope: str) -> str:
    """Flip a bit of the checkpoint's signature (the last line of the signed note)."""
    head, _, line = envelope.rstrip("\n").rpartition("\n")
    dash, name, signature = line.split(" ")
    return f"{head}\n{dash} {name} {_flip(signature)}\n"


def _entry(bundle: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = bundle["verificationMaterial"]["tlogEntries"][0]
    return entry


def _forge_checkpoint(bundle: dict[str, Any]) -> None:
    checkpoint = _entry(bundle)["inclusionProof"]["checkpoint"]
    checkpoint["envelope"] = _corrupt_note(checkpoint["envelope"])


def _forge_promise(bundle: dict[str, Any]) -> None:
    promise = _entry(bundle)["inclusionPromise"]
    promise["signedEntryTimestamp"] = _flip(promise["signedEntryTimestamp"])


def _forge_root_hash(bundle: dict[str, Any]) -> None:
    proof = _entry(bundle)["inclusionProof"]
    proof["rootHash"] = _flip(proof["rootHash"])


def _forge_envelope_signature(bundle: dict[str, Any]) -> None:
    signature = bundle["dsseEnvelope"]["signatures"][0]
    signature["sig"] = _flip(signature["sig"])


def _drop_log_entry_body_hash(bundle: dict[str, Any]) -> None:
    """Log an entry for another statement: the log vouches for something else."""
    entry = _entry(bundle)
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    body["spec"]["payloadHash"]["value"] = "0" * 64
    entry["canonicalizedBody"] = base64.b64encode(json.dumps(body).encode()).decode()


@pytest.mark.parametrize(
    ("forge", "why"),
    [
        (_forge_checkpoint, "checkpoint: invalid signature"),
        (_forge_promise, "SET: invalid inclusion promise"),
        (_forge_root_hash, "invalid root hash"),
        (_forge_envelope_signature, "DSSE: invalid signature"),
        (_drop_log_entry_body_hash, "invalid log entry"),
    ],
)
def test_a_forged_signature_or_log_entry_fails(
    model: Path, instance: SigstoreInstance, forge: Callable[[dict[str, Any]], None], why: str
) -> None:
    signature = model / "model.sig"
    bundle = json.loads(signature.read_text())
    forge(bundle)
    signature.write_text(json.dumps(bundle))
    verdict, rule = judge(model, sigstoreIdentities=[ALICE], sigstoreTrustedRoot=instance.trusted_root())
    assert verdict.outcome is Outcome.BLOCKED
    (violation,) = rule.violations
    assert violation.threat == "MS-SIG-002" and why in violation.message, violation.message


def test_a_key_or_ca_group_does_not_trust_a_keyless_signature(model: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    verdict, rule = judge(model, publicKeys=[pem])
    assert rule.result is RuleResult.FAILED
    message = rule.violations[0].message
    assert "signed with a Sigstore certificate, and the group trusts no signer of that kind" in message


@pytest.mark.parametrize(
    "root",
    [
        '{"mediaType": "nonsense"}',
        "[]",
        '{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}',
    ],
)
def test_an_unusable_trusted_root_is_an_error_not_a_verdict_on_the_model(model: Path, root: str) -> None:
    """A broken trust root is the group's problem: ERROR (fail closed), no finding blaming
    the model."""
    verdict, rule = judge(model, sigstoreIdentities=[ALICE], sigstoreTrustedRoot=root)
    assert verdict.outcome is Outcome.ERROR and rule.result is RuleResult.ERROR
    assert "Sigstore trusted root" in rule.message and not rule.violations
