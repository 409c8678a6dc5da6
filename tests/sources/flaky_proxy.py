"""A reverse proxy in front of moto's S3 server that answers ``503 SlowDown`` (the S3
throttling reply) to the next N requests, to test bounded retries with the real boto3."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
from aiohttp import web

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>test</RequestId></Error>"
)
HOP_BY_HOP = {"transfer-encoding", "content-encoding", "content-length", "connection", "keep-alive"}


class FlakyProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.slow_down_remaining = 0
        self.statuses: list[int] = []
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.slow_down_remaining > 0:
            self.slow_down_remaining -= 1
            self.statuses.append(503)
            return web.Response(status=503, body=SLOW_DOWN, content_type="application/xml")
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", *HOP_BY_HOP)}
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + request.raw_path,
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as upstream:
            payload = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            self.statuses.append(upstream.status)
            if request.method == "HEAD":  # keep the object's size, send no body
                out["Content-Length"] = upstream.headers.get("Content-Length", "0")
                return web.Response(status=upstream.status, headers=out)
            return web.Response(status=upstream.status, headers=out, body=payload)

    def start(self) -> FlakyProxy:
        ready = threading.Event()

        async def setup() -> None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
            app = web.Application(client_max_size=64 << 20)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

        async def teardown() -> None:
            assert self._session is not None and self._runner is not None
            await self._session.close()
            await self._runner.cleanup()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(setup())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(teardown())
            loop.close()

        self._thread = threading.Thread(target=run, name="flaky-s3-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
