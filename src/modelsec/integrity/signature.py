"""OpenSSF model signing signatures, verified offline against a group's trust material.

A signature made by ``model_signing`` (https://github.com/sigstore/model-transparency) is
a Sigstore bundle whose DSSE envelope carries an in-toto statement: one SHA-256 per file
of the model (the *manifest*), signed by an elliptic-curve key, a certificate chaining to
a CA, or a Sigstore (Fulcio) certificate with a transparency-log entry.

``model_signing``'s public ``verify(model_path, signature_path)`` hashes the model's files
again. We verify the signature alone and hand back the signed manifest, which the caller
compares with the digests its scan already computed: a 70 GB model is not read twice,
and remote models, read by range, are not downloaded. That uses the library's verifier
classes (``model_signing._signing``), pinned to an exact version in pyproject.toml; the
tests exercise every path, so an upgrade that moves them fails there, not in production.

Everything here is offline: trust material comes from the group's parameters (PEM keys
and CA certificates, a Sigstore trusted root), never from a TUF repository or a server.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from modelsec.safe_text import printable

if TYPE_CHECKING:
    from pathlib import Path

    from model_signing.manifest import Manifest

MAX_REASON = 300  # per failed attempt, in messages that quote library errors


class SignatureInvalid(Exception):
    """Not a valid signature by a signer the group trusts; the message says why."""


class TrustMaterialError(ValueError):
    """The group's trust material cannot be used (a configuration error, not the model's)."""


class SigningUnavailable(Exception):
    """The ``model-signing`` package is not installed (``pip install modelsec[integrity]``)."""


@dataclass(frozen=True)
class SigstoreIdentity:
    """A Sigstore (Fulcio) signer: the certificate's identity (an e-mail or URI SAN) and
    the OpenID Connect issuer that vouched for it."""

    identity: str
    issuer: str


@dataclass(frozen=True)
class TrustMaterial:
    """Who may sign. Any one of them verifying the bundle makes it valid."""

    public_keys: tuple[str, ...] = ()  # PEM SubjectPublicKeyInfo, EC P-256/384/521
    ca_certificates: tuple[str, ...] = ()  # PEM certificates that anchor signing certificates
    sigstore_identities: tuple[SigstoreIdentity, ...] = ()
    sigstore_trusted_root: str | None = None  # trusted_root.json or a client trust config

    def describe(self) -> str:
        kinds = []
        if self.public_keys:
            kinds.append(f"{len(self.public_keys)} public key(s)")
        if self.ca_certificates:
            kinds.append(f"{len(self.ca_certificates)} CA certificate bundle(s)")
        if self.sigstore_identities:
            kinds.append(f"{len(self.sigstore_identities)} Sigstore identit(y/ies)")
        return ", ".join(kinds) or "no signer"


@dataclass(frozen=True)
class SignedFile:
    """One entry of a signed manifest: the path inside the model as signed, and its digest."""

    name: str  # path inside the model, POSIX, as signed
    algorithm: str  # "sha256" for the file serialization modelsec can check
    digest: str  # lowercase hex


@dataclass(frozen=True)
class SignedManifest:
    """What a valid signature vouches for."""

    signer: str  # which trusted signer verified it, for messages
    method: str  # "files" (one digest per file) or "shards" (per byte range)
    hash_type: str
    files: dict[str, SignedFile] = field(default_factory=dict)
    ignore_paths: tuple[str, ...] = ()  # chosen by the signer, inside the signed payload


def verify_bundle(data: bytes, trust: TrustMaterial) -> SignedManifest:
    """Verify the bundle ``data`` with ``trust``; the manifest it signs, or
    :class:`SignatureInvalid` naming what each trusted signer objected to."""
    _require_library()
    try:
        text = data.decode("utf-8")
        document = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SignatureInvalid(f"not a Sigstore bundle (not JSON: {_reason(exc)})") from None
    if not isinstance(document, dict) or not isinstance(document.get("verificationMaterial"), dict):
        raise SignatureInvalid("not a Sigstore bundle (no verificationMaterial)")
    material: dict[str, Any] = document["verificationMaterial"]

    attempts = _attempts(text, material, trust)
    if not attempts:
        raise SignatureInvalid(
            f"signed with {_signed_with(material)}, and the group trusts no signer of that "
            f"kind (it trusts {trust.describe()})"
        )
    objections: list[str] = []
    for signer, attempt in attempts:
        try:
            manifest = attempt()
        except TrustMaterialError:
            raise
        except Exception as exc:  # each library raises its own types; all mean "not this signer"
            objections.append(f"{signer}: {_reason(exc)}")
            continue
        return _manifest(manifest, signer)
    raise SignatureInvalid("no trusted signer verifies it: " + "; ".join(objections))


def _require_library() -> None:
    try:
        import model_signing._signing.signing  # noqa: F401
    except ImportError as exc:
        raise SigningUnavailable(
            f"the model-signing package is not installed ({exc}); install modelsec[integrity]"
        ) from None


# --- one attempt per trusted signer of the bundle's kind ------------------------------------

Attempt = Callable[[], "Manifest"]


def _signed_with(material: dict[str, Any]) -> str:
    if "publicKey" in material:
        return "a public key"
    if material.get("tlogEntries"):
        return "a Sigstore certificate"
    if "x509CertificateChain" in material or "certificate" in material:
        return "a certificate"
    return "unknown verification material"


def _attempts(text: str, material: dict[str, Any], trust: TrustMaterial) -> list[tuple[str, Attempt]]:
    """Which trusted signers could have made this bundle, each as a verification to try.
    The bundle's own verification material only chooses the kind; what it vouches for
    is decided by the signature checks."""
    attempts: list[tuple[str, Attempt]] = []
    if "publicKey" in material:
        for index, pem in enumerate(trust.public_keys, 1):
            label = f"public key #{index} (SHA-256 of PEM {_key_hint(pem)[:16]})"
            attempts.append((label, functools.partial(_verify_with_key, text, pem)))
    elif material.get("tlogEntries"):
        if trust.sigstore_identities and trust.sigstore_trusted_root:
            who = ", ".join(f"{i.identity} ({i.issuer})" for i in trust.sigstore_identities)
            attempts.append(
                (f"Sigstore identities {who}", functools.partial(_verify_with_sigstore, text, trust))
            )
    elif "x509CertificateChain" in material and trust.ca_certificates:
        attempts.append(("the CA certificates", functools.partial(_verify_with_certificates, text, trust)))
    return attempts


class _InMemory:
    """What the library's verifiers read through ``path.read_bytes()`` /
    ``path.read_text()``: our trust material and bundles are in memory (group parameters,
    the scan's copy of the signature file), and temporary files would be worse."""

    def __init__(self, data: str) -> None:
        self._data = data

    def read_text(self, encoding: str = "utf-8") -> str:
        return self._data

    def read_bytes(self) -> bytes:
        return self._data.encode("utf-8")


def _in_memory(data: str) -> Path:
    """``data`` where the library asks for a file path."""
    # The library annotates these arguments as pathlib.Path but only reads them through
    # read_text/read_bytes, which _InMemory provides.
    return cast("Path", _InMemory(data))


def _key_hint(pem: str) -> str:
    """The ``publicKey.hint`` model_signing writes: SHA-256 of the key's canonical PEM."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(pem.encode())
    canonical = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(canonical).hexdigest()


def _verify_with_key(text: str, pem: str) -> Manifest:
    from model_signing._signing import sign_ec_key, sign_sigstore_pb

    signature = sign_sigstore_pb.Signature.read(_in_memory(text))
    public_key = signature.bundle.verification_material.public_key
    if public_key is not None and not public_key.hint:
        # Bundles from before model_signing 1.0 carry no key hint; the library would then
        # print a warning on stdout (our JSON output). The hint only names the key: the
        # signature check below is what binds the bundle to it.
        public_key.hint = _key_hint(pem)
    return sign_ec_key.Verifier(_in_memory(pem)).verify(signature)


def _verify_with_certificates(text: str, trust: TrustMaterial) -> Manifest:
    from model_signing._signing import sign_certificate, sign_sigstore_pb

    signature = sign_sigstore_pb.Signature.read(_in_memory(text))
    # An explicit, non-empty chain: an empty one would make the library trust the
    # operating system's web PKI, which says nothing about who may sign models.
    anchors = [_in_memory(pem) for pem in trust.ca_certificates]
    return sign_certificate.Verifier(anchors).verify(signature)


def _verify_with_sigstore(text: str, trust: TrustMaterial) -> Manifest:
    from model_signing._signing import sign_sigstore, signing
    from sigstore.models import Bundle
    from sigstore.verify import Verifier
    from sigstore.verify.policy import AnyOf, Identity

    assert trust.sigstore_trusted_root is not None
    root = sigstore_trusted_root(trust.sigstore_trusted_root)
    policy = AnyOf([Identity(identity=i.identity, issuer=i.issuer) for i in trust.sigstore_identities])
    try:
        verifier = Verifier(trusted_root=root)
    except Exception as exc:  # no Fulcio CA or no transparency log in it
        raise TrustMaterialError(
            f"the Sigstore trusted root cannot verify anything: {_reason(exc)}"
        ) from None

    class OfflineSigstore(signing.Verifier):
        """model_signing's statement checks over sigstore-python's bundle verification,
        with our trusted root (theirs would fetch one from a TUF repository)."""

        def _verify_signed_content(self, signature: Any) -> tuple[str, bytes]:
            return verifier.verify_dsse(bundle=signature.bundle, policy=policy)

    return OfflineSigstore().verify(sign_sigstore.Signature(Bundle.from_json(text)))


def sigstore_trusted_root(text: str) -> Any:
    """A ``sigstore.models.TrustedRoot`` from a ``trusted_root.json`` or a client trust
    config (which embeds one); :class:`TrustMaterialError` saying why not."""
    from sigstore.models import ClientTrustConfig, TrustedRoot
    from sigstore_models.trustroot import v1 as trustroot_v1

    try:
        media_type = json.loads(text).get("mediaType", "")
    except (ValueError, AttributeError):
        raise TrustMaterialError("the Sigstore trusted root is not a JSON object") from None
    try:
        if "clienttrustconfig" in str(media_type):
            return ClientTrustConfig.from_json(text).trusted_root
        return TrustedRoot(trustroot_v1.TrustedRoot.from_json(text))
    except Exception as exc:
        raise TrustMaterialError(
            f"the Sigstore trusted root is not a trusted root or client trust config: {_reason(exc)}"
        ) from None


# --- the signed manifest ------------------------------------------------------------------


def _manifest(manifest: Manifest, signer: str) -> SignedManifest:
    serialization = dict(manifest.serialization_type)
    files: dict[str, SignedFile] = {}
    for descriptor in manifest.resource_descriptors():
        name = str(descriptor.identifier)
        files[name] = SignedFile(name, descriptor.digest.algorithm, descriptor.digest.digest_hex.lower())
    ignored = serialization.get("ignore_paths") or ()
    return SignedManifest(
        signer=signer,
        method=str(serialization.get("method", "")),
        hash_type=str(serialization.get("hash_type", "")),
        files=files,
        ignore_paths=tuple(str(p) for p in ignored),
    )


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if type(exc).__name__ not in text:
        text = f"{type(exc).__name__}: {text}"
    text = printable(" ".join(text.split()))
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"
