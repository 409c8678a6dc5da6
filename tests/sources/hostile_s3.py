"""moto's S3 server behind a proxy that lies, for the tests of a broken or compromised S3
endpoint. Each mode is off by default; requests that no mode touches pass through unchanged
(moto answers them), so boto3 speaks the real protocol to a real S3 implementation:

* ``empty_truncated_pages``: every ListObjectsV2 answer is an empty page saying
  ``IsTruncated`` with a new continuation token, forever;
* ``listed_sizes`` / ``headed_sizes``: key -> size that listings / HEAD answers claim (the
  object bytes served are the real ones; set both for a consistent liar);
* ``listing_padding``: bytes of XML whitespace added to every listing answer;
* ``object_etag``: the ETag that GetObject answers claim;
* ``trickle``: requests whose path contains this get a 200 that never ends, one byte per
  ``trickle_interval`` seconds;
* ``error_answers``: substring of ``"<METHOD> <path?query>"`` -> (status, S3 error code):
  matching requests get that error answer (no body when the code is empty).
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web
from flaky_proxy import FlakyProxy

NS = "http://s3.amazonaws.com/doc/2006-03-01/"


class HostileS3Proxy(FlakyProxy):
    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.empty_truncated_pages = False
        self.listed_sizes: dict[str, int] = {}
        self.headed_sizes: dict[str, int] = {}
        self.listing_padding = 0
        self.object_etag = ""
        self.trickle = ""
        self.trickle_interval = 0.05
        self.list_requests = 0
        self.error_answers: dict[str, tuple[int, str]] = {}

    @staticmethod
    def _is_listing(request: web.Request) -> bool:
        return request.method == "GET" and ("list-type" in request.query or "versions" in request.query)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        listing = self._is_listing(request)
        if listing:
            self.list_requests += 1
        if self.trickle and self.trickle in request.path_qs:
            return await self._trickle(request)
        for marker, (status, code) in self.error_answers.items():
            if marker in f"{request.method} {request.path_qs}":
                return self._error_answer(status, code)
        if listing and self.empty_truncated_pages:
            return self._empty_page(request)
        response = await super()._handle(request)
        assert isinstance(response, web.Response)
        if response.status >= 300:
            return response
        key = request.path.split("/", 2)[2] if request.path.count("/") >= 2 else ""
        if listing:
            body = response.body if isinstance(response.body, bytes) else b""
            for lied, size in self.listed_sizes.items():
                body = re.sub(
                    rb"(<Key>" + re.escape(lied.encode()) + rb"</Key>.*?<Size>)\d+(</Size>)",
                    rb"\g<1>" + str(size).encode() + rb"\g<2>",
                    body,
                    count=1,
                    flags=re.S,
                )
            if self.listing_padding:
                end = body.rindex(b"</")
                body = body[:end] + b" " * self.listing_padding + body[end:]
            response.body = body
        elif request.method == "HEAD" and key in self.headed_sizes:
            response.headers["Content-Length"] = str(self.headed_sizes[key])
        elif request.method == "GET" and key and self.object_etag:
            response.headers["ETag"] = f'"{self.object_etag}"'
        return response

    def _error_answer(self, status: int, code: str) -> web.Response:
        self.statuses.append(status)
        if not code:
            return web.Response(status=status)
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            "<Message>from the test proxy</Message><RequestId>test</RequestId></Error>"
        )
        return web.Response(status=status, body=body.encode(), content_type="application/xml")

    def _empty_page(self, request: web.Request) -> web.Response:
        bucket = request.path.strip("/").split("/", 1)[0]
        token = f"page-{self.list_requests}"
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{NS}"><Name>{bucket}</Name>'
            f"<Prefix>{request.query.get('prefix', '')}</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>"
            f"<IsTruncated>true</IsTruncated><NextContinuationToken>{token}</NextContinuationToken>"
            "</ListBucketResult>"
        )
        self.statuses.append(200)
        return web.Response(body=body.encode(), content_type="application/xml")

    async def _trickle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/xml"})
        await response.prepare(request)
        try:
            while True:
                await response.write(b" ")
                await asyncio.sleep(self.trickle_interval)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response
