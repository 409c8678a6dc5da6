"""A Sigstore instance made of keys generated in the test, for offline keyless signatures.

Sigstore's public-good instance issues a short-lived certificate (Fulcio) for an OIDC
identity, logs it in a certificate-transparency log (an SCT embedded in the certificate)
and records the signature in a transparency log (Rekor: an entry, its inclusion proof, a
signed checkpoint and a signed entry timestamp). Here each of those is a key of our own,
and the artefacts are built the way those services build them (RFC 6962 SCTs over the
precertificate, a one-leaf Merkle tree, a signed note), so that sigstore-python verifies
the bundle exactly as it would verify one from the real services, given our trusted root.

Nothing is mocked in the verifier: only the services are replaced by their outputs.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

OIDC_ISSUER_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # Fulcio's issuer (v1) extension
SCT_LIST_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
PAYLOAD_TYPE = "application/vnd.in-toto+json"
START = "2020-01-01T00:00:00Z"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def der_spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    return hashlib.sha256(der_spki(key)).digest()


def _length_prefixed(data: bytes, width: int) -> bytes:
    return len(data).to_bytes(width, "big") + data


def _der_octet_string(data: bytes) -> bytes:
    length = len(data)
    if length < 0x80:
        return b"\x04" + bytes([length]) + data
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return b"\x04" + bytes([0x80 | len(encoded)]) + encoded + data


def pae(payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding, what the envelope's signature covers."""
    return b" ".join(
        [
            b"DSSEv1",
            str(len(PAYLOAD_TYPE)).encode(),
            PAYLOAD_TYPE.encode(),
            str(len(payload)).encode(),
            payload,
        ]
    )


@dataclass
class SigstoreInstance:
    """Fulcio CA, CT log and Rekor log keys; :meth:`trusted_root` is what a verifier trusts."""

    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    ct_key: ec.EllipticCurvePrivateKey
    rekor_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, name: str = "test-sigstore") -> SigstoreInstance:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} fulcio"),
            ]
        )
        now = datetime.datetime.now(datetime.UTC)
        ca = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return cls(
            ca_key, ca, ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        )

    def trusted_root(self) -> str:
        def log(key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, object]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": b64(der_spki(key.public_key())),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": START},
                },
                "logId": {"keyId": b64(key_id(key.public_key()))},
            }

        return json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [log(self.rekor_key, "https://rekor.invalid")],
                "certificateAuthorities": [
                    {
                        "subject": {"organization": "test", "commonName": "fulcio"},
                        "uri": "https://fulcio.invalid",
                        "certChain": {
                            "certificates": [
                                {"rawBytes": b64(self.ca.public_bytes(serialization.Encoding.DER))}
                            ]
                        },
                        "validFor": {"start": START},
                    }
                ],
                "ctlogs": [log(self.ct_key, "https://ctfe.invalid")],
                "timestampAuthorities": [],
            }
        )

    # --- Fulcio + CT log --------------------------------------------------------------------

    def certificate(self, key: ec.EllipticCurvePrivateKey, identity: str, issuer: str) -> x509.Certificate:
        """A Fulcio-style signing certificate for ``identity``, with an embedded SCT."""
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        serial = x509.random_serial_number()

        def builder() -> x509.CertificateBuilder:
            return (
                x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(self.ca.subject)
                .public_key(key.public_key())
                .serial_number(serial)
                .not_valid_before(now - datetime.timedelta(minutes=1))
                .not_valid_after(now + datetime.timedelta(minutes=10))
                .add_extension(
                    x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
                )
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(identity)]), critical=True)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                    critical=False,
                )
                .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_OID, issuer.encode()), critical=False)
            )

        # The CT log signs the precertificate: the TBS without the SCT list (RFC 6962 3.2).
        precertificate = builder().sign(self.ca_key, hashes.SHA256())
        timestamp = int(now.timestamp() * 1000)
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp, 1)
            + key_id(self.ca_key.public_key())
            + _length_prefixed(precertificate.tbs_certificate_bytes, 3)
            + _length_prefixed(b"", 2)
        )
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        sct = (
            b"\x00"
            + key_id(self.ct_key.public_key())
            + struct.pack("!Q", timestamp)
            + _length_prefixed(b"", 2)
            + b"\x04\x03"
            + _length_prefixed(signature, 2)
        )
        sct_list = _length_prefixed(_length_prefixed(sct, 2), 2)
        return (
            builder()
            .add_extension(
                x509.UnrecognizedExtension(SCT_LIST_OID, _der_octet_string(sct_list)), critical=False
            )
            .sign(self.ca_key, hashes.SHA256())
        )

    # --- signing, and Rekor ---------------------------------------------------------------------

    def sign_statement(self, statement: bytes, identity: str, issuer: str) -> dict[str, object]:
        """A Sigstore bundle (v0.3) of a DSSE envelope over ``statement``."""
        key = ec.generate_private_key(ec.SECP256R1())  # ephemeral, as with Fulcio
        certificate = self.certificate(key, identity, issuer)
        signature = key.sign(pae(statement), ec.ECDSA(hashes.SHA256()))
        envelope = {
            "payload": b64(statement),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": b64(signature), "keyid": ""}],
        }
        cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
        body = json.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest(),
                    },
                    "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(statement).hexdigest()},
                    "signatures": [{"signature": b64(signature), "verifier": b64(cert_pem)}],
                },
            }
        ).encode()
        return {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": b64(certificate.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [self._log_entry(body)],
            },
            "dsseEnvelope": envelope,
        }

    def _log_entry(self, body: bytes) -> dict[str, object]:
        """Rekor's answer for ``body`` as the first entry of a fresh log: a one-leaf tree
        (root = leaf hash, no proof hashes), a signed checkpoint and a signed entry timestamp."""
        log_id = key_id(self.rekor_key.public_key())
        integrated = int(datetime.datetime.now(datetime.UTC).timestamp())
        root = hashlib.sha256(b"\x00" + body).digest()
        origin = "rekor.invalid - 1"
        note = f"{origin}\n1\n{b64(root)}\n"
        note_signature = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = f"{note}\n\u2014 {origin.split()[0]} {b64(log_id[:4] + note_signature)}\n"
        promise = rfc8785.dumps(
            {"body": b64(body), "integratedTime": integrated, "logID": log_id.hex(), "logIndex": 0}
        )
        return {
            "logIndex": "0",
            "logId": {"keyId": b64(log_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(integrated),
            "inclusionPromise": {
                "signedEntryTimestamp": b64(self.rekor_key.sign(promise, ec.ECDSA(hashes.SHA256())))
            },
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": b64(root),
                "treeSize": "1",
                "hashes": [],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": b64(body),
        }

    def sign_model(self, model: Path, identity: str, issuer: str, signature: str = "model.sig") -> Path:
        """Sign ``model`` as ``model_signing sign sigstore`` does (file serialization, the
        signature itself ignored), with this instance in place of the public one."""
        from google.protobuf import json_format
        from model_signing import hashing
        from model_signing._signing.signing import Payload

        manifest = hashing.Config().set_ignored_paths(paths=[signature]).hash(model)
        statement = json_format.MessageToJson(Payload(manifest).statement.pb).encode()
        path = model / signature
        path.write_text(json.dumps(self.sign_statement(statement, identity, issuer)))
        return path
