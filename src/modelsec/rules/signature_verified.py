"""SignatureVerified: the model's files are the ones a trusted signer signed.

The signature is an OpenSSF model signing bundle (``model_signing sign``, by default
``model.sig`` at the model's root): a SHA-256 per file, signed with a key, a certificate
or Sigstore. The rule verifies the signature offline with the trust material in its
parameters (:mod:`modelsec.integrity.signature`) and then compares the signed digests
with the digests *this scan* computed; no file is read again.

The comparison is only as good as the scan's digests. Remote files read by range (a 5 GB
safetensors whose header was all the scan needed) have no computed SHA-256, only the one
the Hub or the bucket *claims*: matching a signature against a claim proves what the
server says, not what it serves. Those files make the rule ERROR, naming them, unless
the group sets ``acceptClaimedDigests``.

Results: FAILED when the model is unsigned, the signature is invalid or by an untrusted
signer, a file differs from its signed digest, a file is not covered by the signature,
or a signed file is missing; ERROR when something could not be checked (a digest only
claimed or not computed, a listing the scan could not complete, a signature format
whose digests the scan cannot compare, no trust material in the group, model-signing
not installed).
"""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from modelsec.findings import Finding, Severity, threat
from modelsec.integrity.claims import parse_claim
from modelsec.integrity.evidence import MAX_FILE_BYTES, SIGNATURE_SUFFIX
from modelsec.integrity.names import is_under, model_name
from modelsec.rules.base import Check, EvaluationInput, Rule, RuleOutcome, RuleParams, RuleResult, param

if TYPE_CHECKING:
    from modelsec.engine import FileResult, ScanReport
    from modelsec.integrity.signature import SignedManifest, TrustMaterial

RULE_ID = "SignatureVerified"
_SIGN_HINT = "model_signing sign key|certificate|sigstore <model dir> --signature <model dir>/model.sig"

UNSIGNED = threat(
    "MS-SIG-001",
    RULE_ID,
    Severity.MEDIUM,
    "Model is not signed",
    f"Sign the model with OpenSSF model signing ({_SIGN_HINT}) and publish the signature "
    "with it, or use a group that does not require signatures.",
    "Without a signature nothing ties the files to the people or pipeline that produced them.",
)
INVALID_SIGNATURE = threat(
    "MS-SIG-002",
    RULE_ID,
    Severity.HIGH,
    "Signature is invalid or not by a trusted signer",
    "Verify where the model came from. If the signer is legitimate, add its public key, CA "
    "certificate or Sigstore identity to the group's SignatureVerified parameters.",
    "A signature that does not verify, or verifies only with a key the group does not trust, "
    "says nothing about the model; a forged or replaced signature looks exactly like this.",
)
TAMPERED = threat(
    "MS-SIG-003",
    RULE_ID,
    Severity.CRITICAL,
    "File does not match its signed digest",
    "Do not load this model: a signed file was changed after signing. Fetch the model again "
    "from its publisher, or have the publisher sign the new contents.",
)
NOT_SIGNED_FILE = threat(
    "MS-SIG-004",
    RULE_ID,
    Severity.HIGH,
    "File is not covered by the model's signature",
    "Remove the file, have the publisher sign the model with it, or list it in the rule's "
    "allowUnsignedFiles if it is never loaded.",
    "A file added beside signed ones (a Python module for trust_remote_code, a second "
    "weights file) is loaded with the model but vouched for by no one.",
)
SIGNED_FILE_MISSING = threat(
    "MS-SIG-005",
    RULE_ID,
    Severity.MEDIUM,
    "A signed file is missing from the model",
    "Scan the whole model as it was signed (check allowPatterns / ignorePatterns of the source).",
    "The model as scanned is not the model that was signed.",
)

# Report-level incompletes that mean the scan may not have listed every file: then a
# signed file that seems missing may only be unlisted (ERROR, not FAILED).
_UNREADABLE = "MS-GEN-004"  # modelsec.engine.UNREADABLE (importing the engine would cycle)
_LAYOUT = "MS-SRC-013"  # layout checks only: the file list is complete


def _public_key(pem: str) -> str:
    """A PEM EC public key of a curve model_signing signs with; ValueError otherwise."""
    if "-----BEGIN PUBLIC KEY-----" not in pem:
        raise ValueError("not a PEM public key (-----BEGIN PUBLIC KEY-----)")
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        return pem  # checked when the rule runs, which then needs modelsec[integrity]
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ValueError(f"cannot parse the PEM public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in (
        "secp256r1",
        "secp384r1",
        "secp521r1",
    ):
        raise ValueError("OpenSSF model signing keys are EC P-256, P-384 or P-521")
    return pem


def _certificates(pem: str) -> str:
    """PEM certificates; ValueError if there are none or one does not parse."""
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise ValueError("not PEM certificates (-----BEGIN CERTIFICATE-----)")
    try:
        from cryptography import x509
    except ImportError:
        return pem
    try:
        x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise ValueError(f"cannot parse the PEM certificates: {exc}") from None
    return pem


def _signature_path(value: str) -> str:
    normal = posixpath.normpath(value.strip())
    if value.startswith("/") or normal.startswith("..") or normal == ".":
        raise ValueError("signatureFile is a path inside the model, e.g. model.sig")
    if not normal.lower().endswith(SIGNATURE_SUFFIX):
        # the engine keeps the bytes of *.sig files only (modelsec.integrity.evidence)
        raise ValueError(f"signatureFile must end with {SIGNATURE_SUFFIX}")
    return normal


PublicKeyPem = Annotated[str, Check(_public_key)]
CertificatesPem = Annotated[str, Check(_certificates)]
SignaturePath = Annotated[str, Check(_signature_path)]


@dataclass(frozen=True, kw_only=True)
class SigstoreIdentityParam(RuleParams):
    """One trusted Sigstore signer: the certificate identity and the OIDC issuer that vouched for it."""

    identity: str = param(min_length=1, description="Certificate identity: e-mail or URI SAN.")
    issuer: str = param(min_length=1, description="OpenID Connect issuer URL that vouched for it.")


@dataclass(frozen=True, kw_only=True)
class SignatureVerifiedParams(RuleParams):
    """Parameters of SignatureVerified: where the signature is, whom to trust, what may be unsigned."""

    signature_file: SignaturePath = param(
        default="model.sig",
        alias="signatureFile",
        description="Path of the OpenSSF model signing bundle inside the model (must end with .sig).",
    )
    public_keys: list[PublicKeyPem] = param(
        default_factory=list,
        alias="publicKeys",
        description="Trusted signing keys: PEM public keys (EC P-256, P-384 or P-521).",
    )
    certificate_chains: list[CertificatesPem] = param(
        default_factory=list,
        alias="certificateChains",
        description="Trusted CAs for certificate signing: PEM certificates (a root and its "
        "intermediates); the signing certificate in the bundle must chain to one.",
    )
    sigstore_identities: list[SigstoreIdentityParam] = param(
        default_factory=list,
        alias="sigstoreIdentities",
        description="Trusted Sigstore signers: {identity, issuer} pairs; needs "
        "sigstoreTrustedRoot or sigstoreTrustedRootFile (verification is offline).",
    )
    sigstore_trusted_root: str | None = param(
        default=None,
        alias="sigstoreTrustedRoot",
        description="Sigstore trusted root (trusted_root.json) or client trust config, as JSON text.",
    )
    sigstore_trusted_root_file: str | None = param(
        default=None,
        alias="sigstoreTrustedRootFile",
        description="Path of a Sigstore trusted root (or client trust config) JSON file.",
    )
    accept_claimed_digests: bool = param(
        default=False,
        alias="acceptClaimedDigests",
        description="For remote files the scan read by range only: compare the signature "
        "with the SHA-256 the source claims (Hub LFS, S3 checksum) instead of failing closed.",
    )
    allow_unsigned_files: list[str] = param(
        default_factory=list,
        alias="allowUnsignedFiles",
        description="Glob patterns of files that may be present without being signed "
        "(README.md, .cache/*). The signature file itself and the signer's ignore paths "
        "are always exempt.",
    )

    def __post_init__(self) -> None:
        # Across fields, so on construction (pydantic reports the ValueError as a
        # validation error of the parameters).
        roots = [r for r in (self.sigstore_trusted_root, self.sigstore_trusted_root_file) if r]
        if self.sigstore_identities and len(roots) != 1:
            raise ValueError(
                "sigstoreIdentities need exactly one of sigstoreTrustedRoot or "
                "sigstoreTrustedRootFile: verification is offline, the trust root is never "
                "fetched from Sigstore's servers"
            )
        if roots and not self.sigstore_identities:
            raise ValueError(
                "a Sigstore trusted root without sigstoreIdentities trusts no one; "
                "list the identities (and issuers) allowed to sign"
            )

    @property
    def trusts_someone(self) -> bool:
        # Without trust material the rule is still valid (a group template lists every rule
        # with its defaults), but it verifies nothing: the rule then ERRORs on signed models.
        return bool(self.public_keys or self.certificate_chains or self.sigstore_identities)

    def trust_material(self) -> TrustMaterial:
        """The trust material, the trusted root file read now; ValueError if it cannot be."""
        from modelsec.integrity.signature import SigstoreIdentity, TrustMaterial

        root = self.sigstore_trusted_root
        if self.sigstore_trusted_root_file:
            try:
                root = Path(self.sigstore_trusted_root_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(
                    f"cannot read sigstoreTrustedRootFile {self.sigstore_trusted_root_file}: {exc}"
                ) from None
        return TrustMaterial(
            public_keys=tuple(self.public_keys),
            ca_certificates=tuple(self.certificate_chains),
            sigstore_identities=tuple(
                SigstoreIdentity(i.identity, i.issuer) for i in self.sigstore_identities
            ),
            sigstore_trusted_root=root,
        )


@dataclass
class _Comparison:
    """Signed digests against the scan's, file by file."""

    definite: list[Finding] = field(default_factory=list)  # FAILED whatever else is true
    missing: list[Finding] = field(default_factory=list)  # FAILED only if the listing is complete
    unchecked: list[str] = field(default_factory=list)  # ERROR: no digest to compare


class SignatureVerified(Rule[SignatureVerifiedParams]):
    id = RULE_ID
    title = "Model files are signed by a trusted signer"
    description = (
        "Verifies the model's OpenSSF model signing signature (a Sigstore bundle, "
        "`model.sig`) offline with the trusted keys, CA certificates or Sigstore identities "
        "given as parameters, then checks every file against the signed SHA-256 using the "
        "digests the scan computed. Fails when the model is unsigned, wrongly signed, or a "
        "file was changed, added or removed; ERROR when a remote file's digest is only "
        "claimed by the source (unless acceptClaimedDigests)."
    )
    Params = SignatureVerifiedParams
    judges_content = False  # it judges digests, and says itself what it could not check

    def evaluate(self, given: EvaluationInput, params: SignatureVerifiedParams) -> RuleOutcome:
        from modelsec.integrity.signature import SignatureInvalid, SigningUnavailable, verify_bundle

        report = given.report
        files = {model_name(report.target, f.path): f for f in report.files}
        listing_gap = _listing_gap(report)
        if None in files:
            return _failed(
                [
                    UNSIGNED.at(
                        report.target,
                        "a model that is one file carries no signature; scan the directory (or "
                        f"prefix) that holds the model and its {params.signature_file}",
                    )
                ],
                "the model is a single file, so it is not signed",
            )
        signature = files.get(params.signature_file)
        if signature is None:
            if listing_gap:
                return _error(
                    f"no {params.signature_file} among the files read, but the scan "
                    f"could not list or read everything ({listing_gap}); failing closed"
                )
            return _failed(
                [
                    UNSIGNED.at(
                        report.target,
                        f"no {params.signature_file} in the model: it is not signed",
                        subject=params.signature_file,
                    )
                ],
                f"not signed (no {params.signature_file})",
            )
        if signature.content is None:
            return _error(_not_kept(signature, params.signature_file))
        if not params.trusts_someone:
            return _error(
                "the group trusts no signer (set publicKeys, certificateChains or "
                "sigstoreIdentities), so no signature can be verified; failing closed"
            )

        try:
            signed = verify_bundle(signature.content, params.trust_material())
        except SignatureInvalid as exc:
            return _failed(
                [INVALID_SIGNATURE.at(signature.path, str(exc), subject=params.signature_file)],
                "the signature is not valid for a trusted signer",
            )
        except (SigningUnavailable, ValueError) as exc:
            return _error(f"cannot verify signatures: {exc}; failing closed")

        unsupported = _unsupported(signed)
        if unsupported:
            return _error(unsupported)
        comparison = _compare(files, signed, params, signature)
        if comparison.definite or (comparison.missing and not listing_gap):
            violations = comparison.definite + comparison.missing
            kinds = sorted({v.threat for v in violations})
            return _failed(
                violations,
                f"{len(violations)} file(s) do not match the signature by "
                f"{signed.signer} ({', '.join(kinds)})",
            )
        if comparison.missing:
            names = ", ".join(v.subject or v.file for v in comparison.missing[:5])
            return _error(
                f"signed file(s) not found ({names}), and the scan could not list or "
                f"read everything ({listing_gap}); failing closed"
            )
        if comparison.unchecked:
            more = f" (and {len(comparison.unchecked) - 3} more)" if len(comparison.unchecked) > 3 else ""
            return _error(
                "signature valid, but these files cannot be compared with it: "
                f"{'; '.join(comparison.unchecked[:3])}{more}; failing closed"
            )
        return RuleOutcome(
            RuleResult.PASSED, message=f"{len(signed.files)} file(s) signed by {signed.signer}"
        )


def _failed(violations: list[Finding], message: str) -> RuleOutcome:
    return RuleOutcome(RuleResult.FAILED, violations, message)


def _error(message: str) -> RuleOutcome:
    return RuleOutcome(RuleResult.ERROR, message=message)


def _listing_gap(report: ScanReport) -> str | None:
    """Why the scan may not have seen every file of the model, or None."""
    for incomplete in report.incompletes:
        if incomplete.code == _UNREADABLE or (
            incomplete.code.startswith("MS-SRC-") and incomplete.code != _LAYOUT
        ):
            return incomplete.describe()
    return None


def _not_kept(signature: FileResult, name: str) -> str:
    if signature.size > MAX_FILE_BYTES:
        why = f"it is {signature.size} bytes, more than the {MAX_FILE_BYTES} kept for verification"
    elif signature.incompletes:
        why = f"it could not be read ({signature.incompletes[0].reason})"
    elif signature.size == 0:
        why = "it is empty"
    else:
        why = "the model holds too many signature files to keep them all"
    return f"{name}: the scan did not keep the signature's bytes: {why}; failing closed"


def _unsupported(signed: SignedManifest) -> str | None:
    """Why the scan's whole-file SHA-256 digests cannot be compared with this manifest."""
    if signed.method != "files":
        return (
            f"the signature by {signed.signer} is valid but uses the {signed.method!r} "
            "serialization (digests of byte ranges); modelsec compares whole-file SHA-256 "
            "digests from its scan: sign with the default file serialization; failing closed"
        )
    algorithms = {f.algorithm for f in signed.files.values()} | {signed.hash_type}
    if algorithms - {"sha256"}:
        return (
            f"the signature by {signed.signer} is valid but hashes with "
            f"{', '.join(sorted(algorithms - {'sha256'}))}; modelsec's scan computes SHA-256: "
            "sign with --hash_type sha256 (the default); failing closed"
        )
    return None


def _compare(
    files: dict[str | None, FileResult],
    signed: SignedManifest,
    params: SignatureVerifiedParams,
    signature: FileResult,
) -> _Comparison:
    out = _Comparison()
    who = signed.signer
    for name, entry in signed.files.items():
        scanned = files.get(name)
        if scanned is None:
            out.missing.append(
                SIGNED_FILE_MISSING.at(
                    name,
                    f"signed by {who}, but not in the model as scanned",
                    subject=name,
                )
            )
            continue
        actual = scanned.sha256
        how = "computed by the scan"
        if actual is None:
            claimed = _claimed_sha256(scanned.digest)
            if claimed is None or not params.accept_claimed_digests:
                out.unchecked.append(_why_unchecked(scanned, claimed))
                continue
            actual, how = claimed, "claimed by the source (acceptClaimedDigests)"
        if actual.lower() != entry.digest:
            out.definite.append(
                TAMPERED.at(
                    scanned.path,
                    f"SHA-256 {actual} ({how}) differs from {entry.digest} signed by {who}: the "
                    "file changed after signing",
                    subject=name,
                )
            )
    exempt = (params.signature_file, *signed.ignore_paths)
    for present, scanned in files.items():
        if present is None or present in signed.files or scanned is signature or is_under(present, exempt):
            continue
        if any(fnmatch.fnmatchcase(present, pattern) for pattern in params.allow_unsigned_files):
            continue
        out.definite.append(
            NOT_SIGNED_FILE.at(
                scanned.path,
                f"present in the model but not signed by {who}",
                subject=present,
            )
        )
    return out


def _claimed_sha256(digest: str | None) -> str | None:
    """The SHA-256 a source claims in ``digest``, else None."""
    claim = parse_claim(digest)
    return claim.value if claim is not None and claim.kind == "sha256" else None


def _why_unchecked(scanned: FileResult, claimed: str | None) -> str:
    if claimed is not None:
        return (
            f"{scanned.path}: the scan read it by range, so only the source claims its "
            "SHA-256 (set acceptClaimedDigests to trust the claim)"
        )
    if (other := parse_claim(scanned.digest)) is not None:
        return (
            f"{scanned.path}: the scan read it by range and the source claims no SHA-256 "
            f"({other}); raise the source's hashSmallFilesBytes above its size to have "
            "the scan hash it"
        )
    reason = scanned.incompletes[0].reason if scanned.incompletes else "not fingerprinted"
    return f"{scanned.path}: no digest ({reason})"


RULE = SignatureVerified()
