"""Serving certificates: reload on change (atomically, per handshake), bootstrap."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import trustme
from aiohttp import web
from cryptography import x509

from modelsec_webhook.tls import ServingCertificate, bootstrap


def write_pair(directory: Path, cert: trustme.LeafCert) -> tuple[Path, Path]:
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert.private_key_and_cert_chain_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    return cert_file, key_file


async def served_names(serving: ServingCertificate, ca: trustme.CA) -> list[str]:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=serving.context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = ssl.create_default_context()
    ca.configure_trust(client)
    try:
        # No server name: as the API server connects to https://127.0.0.1 (no SNI).
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="127.0.0.1"
        )
        peer = writer.get_extra_info("peercert")
        writer.close()
        return [value for kind, value in peer["subjectAltName"]]
    finally:
        await runner.cleanup()


async def test_certificate_is_reloaded_when_the_files_change(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert_file, key_file = write_pair(tmp_path, ca.issue_cert("127.0.0.1", "first.example"))
    serving = ServingCertificate(cert_file, key_file)
    assert "first.example" in await served_names(serving, ca)
    assert not serving.reload_if_changed()

    write_pair(tmp_path, ca.issue_cert("127.0.0.1", "second.example"))
    assert serving.reload_if_changed()
    assert "second.example" in await served_names(serving, ca)


async def test_a_broken_update_keeps_the_current_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert_file, key_file = write_pair(tmp_path, ca.issue_cert("127.0.0.1", "good.example"))
    serving = ServingCertificate(cert_file, key_file)
    other = trustme.CA().issue_cert("127.0.0.1")
    other.cert_chain_pems[0].write_to_path(str(cert_file))  # new cert, old key: mid-rotation
    assert not serving.reload_if_changed()
    key_file.write_text("garbage")
    assert not serving.reload_if_changed()
    assert "good.example" in await served_names(serving, ca)


def test_tls_1_2_is_the_minimum(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert_file, key_file = write_pair(tmp_path, ca.issue_cert("127.0.0.1"))
    serving = ServingCertificate(cert_file, key_file)
    assert serving.context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert serving.current.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_bootstrap_makes_a_ca_and_a_certificate_and_reuses_them(tmp_path: Path) -> None:
    made = bootstrap(tmp_path / "tls", ["localhost", "127.0.0.1", "svc.ns.svc"])
    cert = x509.load_pem_x509_certificate(made.cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "svc.ns.svc"}
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    verify = ssl.create_default_context(cafile=str(made.ca_file))
    assert verify.cert_store_stats()["x509_ca"] == 1
    assert (made.key_file.stat().st_mode & 0o777) == 0o600

    before = made.cert_file.read_bytes()
    again = bootstrap(tmp_path / "tls", ["localhost"])  # covered: reused
    assert again.cert_file.read_bytes() == before
    renewed = bootstrap(tmp_path / "tls", ["other.example"])  # not covered: made anew
    assert renewed.cert_file.read_bytes() != before
