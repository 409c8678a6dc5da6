"""A small asynchronous client for the few API calls the webhook makes.

Credentials come from the official client's loaders (kubeconfig or in-cluster service
account), so ``--kubeconfig`` means what it means for kubectl; the calls themselves go
through one :class:`aiohttp.ClientSession` on the webhook's event loop: list and watch for
the view, create for ModelScans and Events, get and patch for the webhook configuration.
None of them is ever made while answering an admission request.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes.client import Configuration

log = logging.getLogger("modelsec.webhook.kube")

# Watch lines are whole objects; a ModelScan can be a few hundred KiB, etcd allows 1.5 MiB.
READ_BUFFER = 4 * 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass
class _Credentials:
    """How to reach the API server: its URL, the TLS context, and the client configuration."""

    base: str
    ssl: ssl.SSLContext | bool
    configuration: Configuration

    def headers(self) -> dict[str, str]:
        # In-cluster tokens rotate; the loader's hook re-reads the projected token file.
        hook = getattr(self.configuration, "refresh_api_key_hook", None)
        if hook is not None:
            hook(self.configuration)
        keys = self.configuration.api_key or {}
        auth = keys.get("authorization") or keys.get("BearerToken")
        if not auth:
            return {}
        prefix = (self.configuration.api_key_prefix or {}).get("authorization")
        if prefix and not auth.startswith(prefix):
            auth = f"{prefix} {auth}"
        elif " " not in auth:
            auth = f"Bearer {auth}"
        return {"Authorization": auth}


def _ssl_context(configuration: Configuration) -> ssl.SSLContext | bool:
    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    return context


class KubeAPI:
    """JSON over HTTPS to the API server. Create one per event loop; close it at the end."""

    def __init__(self, configuration: Configuration, user_agent: str = "modelsec-webhook") -> None:
        self._creds = _Credentials(configuration.host.rstrip("/"), _ssl_context(configuration), configuration)
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._creds.ssl, limit=32),
                read_bufsize=READ_BUFFER,
                headers={"User-Agent": self._user_agent, "Accept": "application/json"},
                trust_env=False,  # the API server is never reached through an HTTP proxy here
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = self._creds.headers()
        if data is not None:
            headers["Content-Type"] = content_type
        async with self.session.request(
            method,
            self._creds.base + path,
            params=params,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            payload = await response.read()
            decoded = _decode(payload)
            if response.status >= 400:
                raise ApiError(
                    response.status,
                    str(decoded.get("reason") or response.reason),
                    str(decoded.get("message") or payload[:300]),
                )
            return decoded

    async def watch(self, path: str, params: dict[str, str], timeout: float) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request, until the server ends it (``timeoutSeconds``)."""
        headers = self._creds.headers()
        async with self.session.get(
            self._creds.base + path,
            params={**params, "watch": "1"},
            headers=headers,
            # No total timeout: the server closes the stream; sock_read catches a dead peer.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=timeout + 30),
        ) as response:
            if response.status >= 400:
                decoded = _decode(await response.read())
                raise ApiError(
                    response.status,
                    str(decoded.get("reason") or response.reason),
                    str(decoded.get("message") or ""),
                )
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)


def _decode(payload: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(payload) if payload else {}
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}
