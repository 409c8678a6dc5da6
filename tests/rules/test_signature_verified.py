"""SignatureVerified: OpenSSF model signing signatures, made in the tests with keys and CAs
made in the tests, verified offline against the scan's own digests; local models, Hugging
Face models (the test Hub) and S3 models (moto)."""

from __future__ import annotations

import base64
import datetime
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from remote_fixtures import HubServer, hub, moto_endpoint, no_credentials  # noqa: E402,F401
from safetensors.numpy import save
from source_helpers import hf_config, s3_client, s3_config  # noqa: E402

from modelsec.engine import Engine
from modelsec.integrity.evidence import MAX_FILE_BYTES
from modelsec.policy import GroupError, Mode, Outcome, Verdict, evaluate, parse_group
from modelsec.rules.base import EvaluationInput, RuleResult
from modelsec.sources import ScannedModel, ScanOptions, parse_model_uri, scan_model

# --- keys, certificates and signatures, all made here -----------------------------------


class Signer:
    """An EC key on disk, as `model_signing sign key` takes it."""

    def __init__(self, directory: Path, curve: ec.EllipticCurve | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(curve or ec.SECP256R1())
        self.private_path = directory / "signing-key.pem"
        self.private_path.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    @property
    def public_pem(self) -> str:
        return (
            self.key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, model: Path, *, shards: bool = False) -> Path:
        import model_signing

        signature = model / "model.sig"
        hashing = model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"])
        if shards:
            hashing = hashing.use_shard_serialization(shard_size=1024)
        (
            model_signing.signing.Config()
            .set_hashing_config(hashing)
            .use_elliptic_key_signer(private_key=self.private_path)
            .sign(model, signature)
        )
        return signature


def key_usage(ca: bool) -> x509.KeyUsage:
    """A CA signs certificates; a signing certificate signs (models)."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class CertificateAuthority:
    """A CA, and signing certificates it issues for `model_signing sign certificate`."""

    def __init__(self, directory: Path, name: str = "Model Signing Test CA") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM).decode()
        (directory / "ca.pem").write_text(self.pem)

    def signer(self, name: str) -> tuple[Path, Path]:
        """(private key path, signing certificate path) for ``name``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        key_path = self.directory / f"{name}.key.pem"
        cert_path = self.directory / f"{name}.cert.pem"
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return key_path, cert_path

    def sign(self, model: Path, name: str = "release-pipeline") -> Path:
        import model_signing

        key_path, cert_path = self.signer(name)
        signature = model / "model.sig"
        (
            model_signing.signing.Config()
            .set_hashing_config(model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"]))
            .use_certificate_signer(
                private_key=key_path,
                signing_certificate=cert_path,
                certificate_chain=[self.directory / "ca.pem"],
            )
            .sign(model, signature)
        )
        return signature


def safetensors_bytes(rows: int = 1024) -> bytes:
    """1 MiB of weights by default: enough that a remote scan reads the header only."""
    return save({"weight": np.arange(rows * 256, dtype=np.float32).reshape(rows, 256)})


MODEL_FILES: dict[str, bytes] = {
    "model.safetensors": safetensors_bytes(),
    "config.json": b'{"architectures": ["LlamaForCausalLM"], "hidden_size": 256}',
    "tokenizer/tokenizer.json": b'{"version": "1.0", "model": {"type": "BPE"}}',
}


def write_model(root: Path, files: dict[str, bytes] | None = None) -> Path:
    for name, data in (files or MODEL_FILES).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def group(mode: str = "Blocking", **params: Any) -> Any:
    return parse_group(
        {"rules": [{"name": "SignatureVerified", "mode": mode, "params": params}]}, "test", "signed"
    )


def judge(scanned: ScannedModel | Path, **params: Any) -> Verdict:
    if isinstance(scanned, Path):
        scanned = scan_model(parse_model_uri(str(scanned)), Engine())
    mode = params.pop("mode", "Blocking")
    return evaluate(
        group(mode, **params), EvaluationInput(scanned.report, scanned.source_type, scanned.metadata)
    )


def rule_of(verdict: Verdict) -> Any:
    (evaluation,) = verdict.rules
    return evaluation


def threats(verdict: Verdict) -> list[tuple[str, str]]:
    """(threat, subject) of each violation."""
    return sorted((v.threat, v.subject or "") for v in rule_of(verdict).violations)


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer(tmp_path / "keys")


@pytest.fixture
def signed_model(tmp_path: Path, signer: Signer) -> Path:
    model = write_model(tmp_path / "model")
    signer.sign(model)
    return model


# --- local models ---------------------------------------------------------------------------


def test_a_model_signed_by_a_trusted_key_is_allowed(signed_model: Path, signer: Signer) -> None:
    verdict = judge(signed_model, publicKeys=[signer.public_pem])
    assert verdict.outcome is Outcome.ALLOWED, verdict.reason
    assert rule_of(verdict).result is RuleResult.PASSED
    assert "3 file(s) signed by public key #1" in rule_of(verdict).message


def test_a_changed_file_is_named_with_both_digests(signed_model: Path, signer: Signer) -> None:
    import hashlib

    config = signed_model / "config.json"
    signed_digest = hashlib.sha256(config.read_bytes()).hexdigest()
    config.write_bytes(b'{"architectures": ["LlamaForCausalLM"], "auto_map": {"AutoModel": "evil.Model"}}')
    verdict = judge(signed_model, publicKeys=[signer.public_pem])

    assert verdict.outcome is Outcome.BLOCKED
    (violation,) = rule_of(verdict).violations
    assert (violation.threat, violation.subject, violation.file) == ("MS-SIG-003", "config.json", str(config))
    assert signed_digest in violation.message
    assert hashlib.sha256(config.read_bytes()).hexdigest() in violation.message
    assert "changed after signing" in violation.message


def test_a_model_without_signature_is_unsigned(tmp_path: Path, signer: Signer) -> None:
    verdict = judge(write_model(tmp_path / "model"), publicKeys=[signer.public_pem])
    assert verdict.outcome is Outcome.BLOCKED
    assert threats(verdict) == [("MS-SIG-001", "model.sig")]
    assert "not signed" in rule_of(verdict).message


def test_a_model_signed_by_another_key_is_wrongly_signed(signed_model: Path, tmp_path: Path) -> None:
    stranger = Signer(tmp_path / "stranger")
    verdict = judge(signed_model, publicKeys=[stranger.public_pem])
    assert verdict.outcome is Outcome.BLOCKED
    (violation,) = rule_of(verdict).violations
    assert violation.threat == "MS-SIG-002" and violation.file == str(signed_model / "model.sig")
    assert "Key mismatch" in violation.message  # the key hint names another key


def test_a_resigned_model_with_a_stolen_hint_still_fails(
    signed_model: Path, signer: Signer, tmp_path: Path
) -> None:
    """An attacker re-signs changed files with their own key and copies the trusted key's
    hint into the bundle: only the signature check decides."""
    (signed_model / "config.json").write_bytes(b'{"auto_map": {"AutoModel": "evil.Model"}}')
    attacker = Signer(tmp_path / "attacker")
    attacker.sign(signed_model)
    bundle = json.loads((signed_model / "model.sig").read_text())
    from modelsec.integrity.signature import _key_hint

    bundle["verificationMaterial"]["publicKey"]["hint"] = _key_hint(signer.public_pem)
    (signed_model / "model.sig").write_text(json.dumps(bundle))
    verdict = judge(signed_model, publicKeys=[signer.public_pem])
    assert verdict.outcome is Outcome.BLOCKED
    (violation,) = rule_of(verdict).violations
    assert violation.threat == "MS-SIG-002" and "InvalidSignature" in violation.message


def test_a_tampered_payload_breaks_the_signature(signed_model: Path, signer: Signer) -> None:
    """Rewrite a digest inside the signed statement (to match a changed file): the
    signature no longer verifies, so no digest from it is believed."""
    signature = signed_model / "model.sig"
    bundle = json.loads(signature.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    signature.write_text(json.dumps(bundle))
    verdict = judge(signed_model, publicKeys=[signer.public_pem])
    assert threats(verdict) == [("MS-SIG-002", "model.sig")]


@pytest.mark.parametrize("content", [b"not json at all", b"[1, 2, 3]", b'{"mediaType": "x"}', b"\xff\xfe"])
def test_a_signature_file_that_is_not_a_bundle_fails(
    signed_model: Path, signer: Signer, content: bytes
) -> None:
    (signed_model / "model.sig").write_bytes(content)
    verdict = judge(signed_model, publicKeys=[signer.public_pem])
    assert verdict.outcome is Outcome.BLOCKED
    (violation,) = rule_of(verdict).violations
    assert violation.threat == "MS-SIG-002" and "not a Sigstore bundle" in violation.message


def test_an_added_file_is_not_covered_and_can_be_allowed(signed_model: Path, signer: Signer) -> None:
    (signed_model / "modeling_evil.py").write_text("import os\nos.system('id')\n")
    verdict = judge(signed_model, publicKeys=[signer.public_pem])
    assert verdict.outcome is Outcome.BLOCKED
    assert threats(verdict) == [("MS-SIG-004", "modeling_evil.py")]

    allowed = judge(signed_model, publicKeys=[signer.public_pem], allowUnsignedFiles=["*.py"])
    assert allowed.outcome is Outcome.ALLOWED, allowed.reason


def test_a_removed_file_is_missing(signed_model: Path, signer: Signer) -> None:
    (signed_model / "tokenizer" / "tokenizer.json").unlink()
    verdict = judge(signed_model, publicKeys=[signer.public_pem])
    assert verdict.outcome is Outcome.BLOCKED
    assert threats(verdict) == [("MS-SIG-005", "tokenizer/tokenizer.json")]


def test_a_removed_file_with_an_unreadable_path_is_an_error(signed_model: Path, signer: Signer) -> None:
    """The scan could not list everything (a FIFO it never opens): a signed file that seems
    missing may only be unread, so the rule fails closed with ERROR, not a guess."""
    (signed_model / "tokenizer" / "tokenizer.json").unlink()
    os.mkfifo(signed_model / "pipe")
    verdict = judge(signed_model, publicKeys=[signer.public_pem])
    assert verdict.outcome is Outcome.ERROR
    assert rule_of(verdict).result is RuleResult.ERROR
    assert (
        "tokenizer/tokenizer.json" in rule_of(verdict).message
        and "failing closed" in rule_of(verdict).message
    )


def test_the_signers_ignore_paths_are_respected(tmp_path: Path, signer: Signer) -> None:
    """model_signing ignores .git* paths by default; the signed statement says so."""
    model = write_model(tmp_path / "model", {**MODEL_FILES, ".gitattributes": b"*.safetensors filter=lfs\n"})
    signer.sign(model)
    (model / ".gitattributes").write_text("changed after signing, and not signed\n")
    assert judge(model, publicKeys=[signer.public_pem]).outcome is Outcome.ALLOWED


def test_any_trusted_key_may_sign(signed_model: Path, signer: Signer, tmp_path: Path) -> None:
    other = Signer(tmp_path / "other", ec.SECP384R1())
    verdict = judge(signed_model, publicKeys=[other.public_pem, signer.public_pem])
    assert verdict.outcome is Outcome.ALLOWED
    assert "public key #2" in rule_of(verdict).message


def test_non_blocking_mode_warns(signed_model: Path, tmp_path: Path) -> None:
    verdict = judge(signed_model, mode="NonBlocking", publicKeys=[Signer(tmp_path / "x").public_pem])
    assert verdict.outcome is Outcome.ALLOWED
    assert [w.name for w in verdict.warnings] == ["SignatureVerified"]
    assert verdict.rules[0].mode is Mode.NON_BLOCKING


def test_a_single_file_model_is_unsigned(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes())
    verdict = judge(path, publicKeys=[signer.public_pem])
    assert threats(verdict) == [("MS-SIG-001", "")]
    assert "one file" in rule_of(verdict).violations[0].message


def test_a_signature_too_large_to_keep_fails_closed(signed_model: Path, signer: Signer) -> None:
    bundle = json.loads((signed_model / "model.sig").read_text())
    bundle["padding"] = "x" * MAX_FILE_BYTES
    (signed_model / "model.sig").write_text(json.dumps(bundle))
    verdict = judge(signed_model, publicKeys=[signer.public_pem])
    assert verdict.outcome is Outcome.ERROR
    assert "did not keep the signature" in rule_of(verdict).message


def test_shard_signatures_cannot_be_compared_and_error(tmp_path: Path, signer: Signer) -> None:
    model = write_model(tmp_path / "model")
    signer.sign(model, shards=True)
    verdict = judge(model, publicKeys=[signer.public_pem])
    assert verdict.outcome is Outcome.ERROR
    assert "'shards' serialization" in rule_of(verdict).message


def test_a_signature_file_in_a_subdirectory(tmp_path: Path, signer: Signer) -> None:
    model = write_model(tmp_path / "model")
    signer.sign(model)
    (model / "signatures").mkdir()
    (model / "model.sig").rename(model / "signatures" / "release.sig")
    # the signer did not exclude signatures/release.sig, but the rule always exempts its own
    verdict = judge(model, publicKeys=[signer.public_pem], signatureFile="signatures/release.sig")
    assert verdict.outcome is Outcome.ALLOWED, verdict.reason
    assert judge(model, publicKeys=[signer.public_pem]).outcome is Outcome.BLOCKED  # model.sig is gone


# --- certificate chains ---------------------------------------------------------------------


def test_a_certificate_from_a_trusted_ca_is_allowed(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "ca")
    model = write_model(tmp_path / "model")
    ca.sign(model)
    verdict = judge(model, certificateChains=[ca.pem])
    assert verdict.outcome is Outcome.ALLOWED, verdict.reason
    assert "signed by the CA certificates" in rule_of(verdict).message


def test_a_certificate_from_another_ca_is_wrongly_signed(tmp_path: Path) -> None:
    model = write_model(tmp_path / "model")
    CertificateAuthority(tmp_path / "rogue", "Rogue CA").sign(model)
    trusted = CertificateAuthority(tmp_path / "ca")
    verdict = judge(model, certificateChains=[trusted.pem])
    assert verdict.outcome is Outcome.BLOCKED
    (violation,) = rule_of(verdict).violations
    assert violation.threat == "MS-SIG-002"
    assert "the CA certificates: X509StoreContextError: self-signed certificate" in violation.message


def test_a_key_signature_is_not_accepted_by_a_ca_only_group(signed_model: Path, tmp_path: Path) -> None:
    verdict = judge(signed_model, certificateChains=[CertificateAuthority(tmp_path / "ca").pem])
    (violation,) = rule_of(verdict).violations
    assert violation.threat == "MS-SIG-002"
    assert "signed with a public key, and the group trusts no signer of that kind" in violation.message


# --- parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"publicKeys": ["not a key"]}, "not a PEM public key"),
        ({"publicKeys": ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"]}, "cannot parse"),
        (
            {"certificateChains": ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]},
            "cannot parse",
        ),
        ({"sigstoreIdentities": [{"identity": "a@example.com", "issuer": "https://issuer"}]}, "offline"),
        ({"sigstoreTrustedRoot": "{}"}, "trusts no one"),
        ({"publicKeys": [], "signatureFile": "../model.sig"}, "inside the model"),
        ({"signatureFile": "model.json"}, "must end with .sig"),
        ({"publicKyes": []}, "Extra inputs are not permitted"),
        (
            {"sigstoreIdentities": [{"identity": "a@example.com", "issuer": "https://i", "isuer": "x"}]},
            "sigstoreIdentities.0.isuer: Extra inputs are not permitted",
        ),
    ],
)
def test_invalid_parameters_are_refused_when_the_group_loads(params: dict[str, Any], problem: str) -> None:
    with pytest.raises(GroupError, match=problem):
        group(**params)


def test_without_trust_material_nothing_verifies(signed_model: Path, tmp_path: Path) -> None:
    """A group template lists the rule with its defaults: valid, but it trusts no one."""
    verdict = judge(signed_model)
    assert verdict.outcome is Outcome.ERROR
    assert "trusts no signer" in rule_of(verdict).message
    assert threats(judge(write_model(tmp_path / "unsigned"))) == [("MS-SIG-001", "model.sig")]


def test_rsa_keys_are_refused(tmp_path: Path) -> None:
    pem = (
        rsa.generate_private_key(65537, 2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(GroupError, match="EC P-256, P-384 or P-521"):
        group(publicKeys=[pem])


def test_an_unreadable_trusted_root_file_is_an_error(signed_model: Path, tmp_path: Path) -> None:
    verdict = judge(
        signed_model,
        sigstoreIdentities=[{"identity": "a@example.com", "issuer": "https://i"}],
        sigstoreTrustedRootFile=str(tmp_path / "missing.json"),
    )
    assert verdict.outcome is Outcome.ERROR
    assert "cannot read sigstoreTrustedRootFile" in rule_of(verdict).message


# --- Hugging Face (the test Hub) -----------------------------------------------------------


def signed_files(tmp_path: Path, signer: Signer, files: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """``files`` and the model.sig that signs them, as a publisher would upload them."""
    model = write_model(tmp_path / "publish", files)
    signer.sign(model)
    return {str(p.relative_to(model)): p.read_bytes() for p in sorted(model.rglob("*")) if p.is_file()}


def hf_scan(hub: HubServer, uri: str, **config: Any) -> ScannedModel:
    return scan_model(parse_model_uri(uri), Engine(), ScanOptions(config=hf_config(hub, **config)))


@pytest.mark.usefixtures("no_credentials")
def test_hf_lfs_weights_read_by_range_are_only_claimed(
    hub: HubServer, tmp_path: Path, signer: Signer
) -> None:
    """The scan reads the safetensors header only: the SHA-256 is the Hub's claim, so the
    rule fails closed naming the file; acceptClaimedDigests compares with the claim."""
    hub.add_repo("acme/signed", signed_files(tmp_path, signer))
    scanned = hf_scan(hub, "hf://acme/signed")
    weights = next(f for f in scanned.report.files if f.path.endswith("model.safetensors"))
    assert weights.sha256 is None and weights.digest and weights.digest.startswith("claimed:sha256:")

    verdict = judge(scanned, publicKeys=[signer.public_pem])
    assert verdict.outcome is Outcome.ERROR
    message = rule_of(verdict).message
    assert "hf://acme/signed/model.safetensors" in message and "only the source claims" in message

    verdict = judge(scanned, publicKeys=[signer.public_pem], acceptClaimedDigests=True)
    assert verdict.outcome is Outcome.ALLOWED, verdict.reason


@pytest.mark.usefixtures("no_credentials")
def test_hf_files_the_scan_hashed_are_compared(hub: HubServer, tmp_path: Path, signer: Signer) -> None:
    """Weights that the scan reads whole (a non-LFS file up to hashSmallFilesBytes) carry a
    computed SHA-256: no claim is needed and none is trusted."""
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }".ljust(117) + b"\n"
    files = {**MODEL_FILES, "weights.npy": b"\x93NUMPY\x01\x00v\x00" + header + bytes(16)}
    del files["model.safetensors"]
    hub.add_repo("acme/small", signed_files(tmp_path, signer, files))
    for entry in hub.repos["acme/small"].commits[-1].files.values():
        entry.lfs = False
    scanned = hf_scan(hub, "hf://acme/small")
    assert all(f.sha256 for f in scanned.report.files)
    assert judge(scanned, publicKeys=[signer.public_pem]).outcome is Outcome.ALLOWED


@pytest.mark.usefixtures("no_credentials")
def test_hf_a_changed_file_in_a_new_commit_fails(hub: HubServer, tmp_path: Path, signer: Signer) -> None:
    hub.add_repo("acme/model", signed_files(tmp_path, signer))
    hub.push("acme/model", {"config.json": b'{"auto_map": {"AutoModel": "evil.Model"}}'})
    verdict = judge(
        hf_scan(hub, "hf://acme/model"), publicKeys=[signer.public_pem], acceptClaimedDigests=True
    )
    assert verdict.outcome is Outcome.BLOCKED
    assert threats(verdict) == [("MS-SIG-003", "config.json")]
    assert rule_of(verdict).violations[0].file == "hf://acme/model/config.json"


@pytest.mark.usefixtures("no_credentials")
def test_hf_a_claim_that_differs_from_the_signature_fails(
    hub: HubServer, tmp_path: Path, signer: Signer
) -> None:
    """New weights pushed after signing: even when claims are accepted, the Hub's claim for
    them is not the signed digest."""
    hub.add_repo("acme/model", signed_files(tmp_path, signer))
    hub.push("acme/model", {"model.safetensors": safetensors_bytes(1025)})
    verdict = judge(
        hf_scan(hub, "hf://acme/model"), publicKeys=[signer.public_pem], acceptClaimedDigests=True
    )
    assert threats(verdict) == [("MS-SIG-003", "model.safetensors")]
    assert "claimed by the source" in rule_of(verdict).violations[0].message


@pytest.mark.usefixtures("no_credentials")
def test_hf_unsigned_and_wrongly_signed(hub: HubServer, tmp_path: Path, signer: Signer) -> None:
    hub.add_repo("acme/unsigned", dict(MODEL_FILES))
    verdict = judge(hf_scan(hub, "hf://acme/unsigned"), publicKeys=[signer.public_pem])
    assert threats(verdict) == [("MS-SIG-001", "model.sig")]

    hub.add_repo("acme/other", signed_files(tmp_path / "o", Signer(tmp_path / "other")))
    verdict = judge(hf_scan(hub, "hf://acme/other"), publicKeys=[signer.public_pem])
    assert threats(verdict) == [("MS-SIG-002", "model.sig")]
    assert rule_of(verdict).violations[0].file == "hf://acme/other/model.sig"


# --- S3 (moto) ------------------------------------------------------------------------------


def upload(endpoint: str, bucket: str, prefix: str, files: dict[str, bytes]) -> None:
    s3 = s3_client(endpoint)
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=bucket)
    for name, data in files.items():
        s3.put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=data)


def s3_scan(endpoint: str, uri: str, **config: Any) -> ScannedModel:
    return scan_model(parse_model_uri(uri), Engine(), ScanOptions(config=s3_config(endpoint, **config)))


@pytest.mark.usefixtures("no_credentials")
def test_s3_signed_model_is_allowed_and_a_tampered_one_blocked(
    moto_endpoint: str, tmp_path: Path, signer: Signer
) -> None:
    files = signed_files(tmp_path, signer)
    upload(moto_endpoint, "signed-models", "llama/", files)
    verdict = judge(s3_scan(moto_endpoint, "s3://signed-models/llama/"), publicKeys=[signer.public_pem])
    assert verdict.outcome is Outcome.ALLOWED, verdict.reason

    upload(
        moto_endpoint,
        "signed-models",
        "llama/",
        {"config.json": b'{"auto_map": {"x": "evil.X"}}', "extra.py": b"import os\n"},
    )
    verdict = judge(s3_scan(moto_endpoint, "s3://signed-models/llama/"), publicKeys=[signer.public_pem])
    assert verdict.outcome is Outcome.BLOCKED
    assert threats(verdict) == [("MS-SIG-003", "config.json"), ("MS-SIG-004", "extra.py")]
    assert {v.file for v in rule_of(verdict).violations} == {
        "s3://signed-models/llama/config.json",
        "s3://signed-models/llama/extra.py",
    }


@pytest.mark.usefixtures("no_credentials")
def test_s3_objects_read_by_range_without_a_checksum_error(
    moto_endpoint: str, tmp_path: Path, signer: Signer
) -> None:
    """An object larger than hashSmallFilesBytes, read by range, with no checksum: nothing
    but an ETag to compare, so the rule fails closed and says how to fix it."""
    upload(moto_endpoint, "range-models", "m/", signed_files(tmp_path, signer))
    scanned = s3_scan(moto_endpoint, "s3://range-models/m/", hashSmallFilesBytes=4096)
    verdict = judge(scanned, publicKeys=[signer.public_pem], acceptClaimedDigests=True)
    assert verdict.outcome is Outcome.ERROR
    message = rule_of(verdict).message
    assert "s3://range-models/m/model.safetensors" in message and "hashSmallFilesBytes" in message

    scanned = s3_scan(moto_endpoint, "s3://range-models/m/")
    assert judge(scanned, publicKeys=[signer.public_pem]).outcome is Outcome.ALLOWED
