"""Serving TLS: certificates from files, reloaded when they change, or a bootstrapped CA.

**Files** (``--tls-cert``/``--tls-key``, e.g. a cert-manager Secret mounted as a volume):
the files are polled and, when they change and load cleanly, swapped in for new
connections. The swap happens in the TLS handshake's SNI callback (which OpenSSL calls
with or without a server name), so a handshake sees either the old pair or the new one,
never a certificate with the other key. A broken update keeps the old pair and is logged.

**Bootstrap** (``--bootstrap-tls``): a self-signed CA and a serving certificate for the
given names are written to ``--tls-dir`` (reused across restarts while valid for 30 more
days), and the CA is written into the ``caBundle`` of every webhook of the named
``ValidatingWebhookConfiguration``, then kept there (a re-applied manifest with an empty
``caBundle`` is patched again). Meant for one replica and for development; with several
replicas use files from cert-manager so that all replicas serve one CA's certificates.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelsec_webhook import metrics
from modelsec_webhook.kubeapi import ApiError, KubeAPI

log = logging.getLogger("modelsec.webhook.tls")

VWC_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
MWC_PATH = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
RENEW_BEFORE = dt.timedelta(days=30)
VALIDITY = dt.timedelta(days=365)


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A TLS 1.2+ server context for the pair; raises ssl.SSLError/OSError when unusable."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


def _signature(*paths: Path) -> tuple[tuple[int, int, int], ...]:
    out = []
    for path in paths:
        st = os.stat(path)  # follows symlinks: a Secret volume swaps its ..data link
        out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


class ServingCertificate:
    """The TLS context the HTTPS server listens with, and the reload loop behind it."""

    def __init__(self, cert_file: Path, key_file: Path, check_seconds: float = 10.0) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.check_seconds = check_seconds
        self.current = server_context(cert_file, key_file)
        self.loaded_signature = _signature(cert_file, key_file)
        metrics.TLS_RELOADS.labels("loaded").inc()
        # The listening context: its certificate is the first pair, and every handshake is
        # moved onto the current context before the certificate is chosen.
        self.context = server_context(cert_file, key_file)
        self.context.sni_callback = self._select

    def _select(self, connection: ssl.SSLObject, _server_name: str | None, _ctx: ssl.SSLContext) -> None:
        if connection.context is not self.current:
            connection.context = self.current
        return None

    def reload_if_changed(self) -> bool:
        try:
            signature = _signature(self.cert_file, self.key_file)
        except OSError as exc:
            log.warning(f"cannot stat the serving certificate: {exc}; keeping the current one")
            return False
        if signature == self.loaded_signature:
            return False
        try:
            fresh = server_context(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as exc:
            # Mid-rotation (cert written, key not yet) or broken: try again next round.
            metrics.TLS_RELOADS.labels("failed").inc()
            log.warning(f"new serving certificate does not load ({exc}); keeping the current one")
            return False
        self.current = fresh
        self.loaded_signature = signature
        metrics.TLS_RELOADS.labels("loaded").inc()
        log.info(f"reloaded the serving certificate from {self.cert_file}")
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            self.reload_if_changed()


# --- bootstrap ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bootstrapped:
    """Where the bootstrapped serving certificate, its key and the CA's certificate are."""

    cert_file: Path
    key_file: Path
    ca_file: Path

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca_file.read_bytes()).decode()


def _still_good(directory: Path, hosts: list[str]) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate((directory / "tls.crt").read_bytes())
        server_context(directory / "tls.crt", directory / "tls.key")
        (directory / "ca.crt").read_bytes()
    except (OSError, ValueError, ssl.SSLError):
        return False
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    names = {str(n) for n in san.get_values_for_type(x509.DNSName)}
    names |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return set(hosts) <= names


def bootstrap(directory: Path, hosts: list[str]) -> Bootstrapped:
    """A CA and a serving certificate for ``hosts`` (DNS names or IPs) in ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    result = Bootstrapped(directory / "tls.crt", directory / "tls.key", directory / "ca.crt")
    if _still_good(directory, hosts):
        log.info(f"reusing the bootstrapped certificate in {directory}")
        return result

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelsec-webhook-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write(
        result.key_file,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    _write(result.cert_file, cert.public_bytes(serialization.Encoding.PEM))
    _write(result.ca_file, ca.public_bytes(serialization.Encoding.PEM))
    log.info(f"bootstrapped a CA and a serving certificate for {', '.join(hosts)} in {directory}")
    return result


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


# What ensure_ca_bundle found: the CA written now, already there, or no configuration.
BundleState = Literal["patched", "current", "missing"]


async def ensure_ca_bundle(api: KubeAPI, name: str, ca_bundle: str, collection: str = "") -> BundleState:
    """Write ``ca_bundle`` into every webhook of the configuration that lacks it (the
    ValidatingWebhookConfiguration, or the collection path given: the mutating one)."""
    collection = collection or VWC_PATH
    kind = "MutatingWebhookConfiguration" if collection == MWC_PATH else "ValidatingWebhookConfiguration"
    try:
        config = await api.request("GET", f"{collection}/{name}")
    except ApiError as exc:
        if exc.status == 404:
            return "missing"
        raise
    operations: list[dict[str, object]] = []
    for i, webhook in enumerate(config.get("webhooks") or []):
        client = webhook.get("clientConfig") or {}
        if client.get("caBundle") == ca_bundle:
            continue
        # `test` guards against the list changing between our read and our write.
        operations.append({"op": "test", "path": f"/webhooks/{i}/name", "value": webhook.get("name")})
        operations.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": ca_bundle})
    if not operations:
        return "current"
    await api.request(
        "PATCH", f"{collection}/{name}", body=operations, content_type="application/json-patch+json"
    )
    log.info(f"wrote the CA into {kind} {name}")
    return "patched"


async def keep_ca_bundle(api: KubeAPI, name: str, ca_bundle: str, every: float = 60.0) -> None:
    while True:
        state: BundleState | Literal["failed"]
        try:
            state = await ensure_ca_bundle(api, name, ca_bundle)
            if state == "missing":
                log.warning(f"ValidatingWebhookConfiguration {name} does not exist yet; will retry")
            # The mutating configuration (pinning, verifyAtStart) is optional.
            await ensure_ca_bundle(api, name, ca_bundle, MWC_PATH)
        except Exception as exc:  # noqa: BLE001 - keep trying; the API server may be restarting
            state = "failed"
            log.warning(f"could not check the caBundle of {name}: {exc}")
        await asyncio.sleep(5.0 if state in ("missing", "failed") else every)
