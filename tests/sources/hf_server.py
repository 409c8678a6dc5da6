"""A Hugging Face Hub HTTP server for the tests, speaking the endpoints huggingface_hub calls.

Written against huggingface_hub 2.4's client code (``hf_api.py``, ``file_download.py``,
``utils/_http.py``); ``test_hf_contract.py`` pins the shapes by calling the real client
against it. Endpoints:

* ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``: model info; with
  ``blobs=true`` siblings carry ``size``, ``blobId`` and ``lfs {sha256,size,pointerSize}``.
* ``GET /api/models/{repo}/tree/{rev}[/{path}]`` (``recursive``, cursor pagination with a
  ``Link: <...>; rel="next"`` header) and ``POST /api/models/{repo}/paths-info/{rev}``.
* ``GET /api/models/{repo}/refs``: branches and tags with their commits.
* ``GET /api/organizations/{org}/overview`` (``isVerified``), ``/api/users/{u}/overview``.
* ``GET|HEAD /{repo}/resolve/{rev}/{path}`` with ``Range``; ``X-Repo-Commit``, ``ETag``;
  LFS files answer ``302`` to a CDN on another port with ``X-Linked-Etag`` /
  ``X-Linked-Size`` (the CDN records whether an Authorization header reached it).

Errors carry the ``X-Error-Code`` header huggingface_hub maps to exception types:
``RepoNotFound`` (404 missing; 401 private without token), ``GatedRepo`` (401 without a
token, 403 with one that has no access), ``RevisionNotFound``, ``EntryNotFound``; an unknown
token gets 401 "Invalid credentials in Authorization header". Test knobs: ``throttle`` (429
with ``Retry-After`` / ``RateLimit`` headers), ``stall_seconds`` (slow answers, for
timeouts), ``ignore_range`` (a server that answers 200 to ranges). Large files can be
served from disk (sparse files) so benchmarks need no RAM for them.

Misbehaving modes, for a broken or compromised Hub (or a mirror in front of it), each off by
default: ``HubFile.served`` (bytes other than the listed ones, of any length, with listing
and headers still describing the listed file), ``resolve_headers`` (replace headers of the
``/resolve`` answers: ``X-Linked-Size``, ``X-Linked-Etag``, ``X-Repo-Commit``),
``endless_tree`` / ``endless_tree_files`` (tree pages that always link a next page, empty or
full of new files), ``tree_link_base`` (next-page links to another host),
``model_info_padding`` (a model-info answer of any size, valid JSON, streamed), ``gzip_api``
(JSON answers gzip-encoded: with padding, a decompression bomb), ``trickle_api`` (API
answers that never end, one byte at a time), ``trickle_files`` (file bytes one at a
time) and ``error_answers`` (GET paths containing a key answer that HTTP status, with no
``X-Error-Code``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode

from aiohttp import web

LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".pkl",
    ".ckpt",
    ".gguf",
    ".onnx",
    ".h5",
    ".msgpack",
    ".zip",
    ".npz",
    ".npy",
)
LFS_THRESHOLD = 10 << 20
CHUNK = 1 << 20


@dataclass
class HubFile:
    path: str
    data: bytes | None = None
    disk_path: str | None = None  # served from disk (sparse files for benchmarks)
    lfs: bool | None = None  # default: by suffix or size
    sha256: str | None = None  # required with disk_path (else computed)
    served: bytes | None = None  # bytes actually served, when a test wants them to differ

    def __post_init__(self) -> None:
        if self.data is None and self.disk_path is None:
            raise ValueError("HubFile needs data or disk_path")
        if self.sha256 is None:
            if self.data is not None:
                self.sha256 = hashlib.sha256(self.data).hexdigest()
            else:
                h = hashlib.sha256()
                with open(self.disk_path, "rb") as f:  # type: ignore[arg-type]
                    while chunk := f.read(CHUNK):
                        h.update(chunk)
                self.sha256 = h.hexdigest()
        if self.lfs is None:
            self.lfs = self.path.endswith(LFS_SUFFIXES) or self.size >= LFS_THRESHOLD

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        return os.path.getsize(self.disk_path)  # type: ignore[arg-type]

    def pointer(self) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n"
        ).encode()

    @property
    def oid(self) -> str:
        """The git object id: of the pointer file for LFS files, else of the content."""
        body = self.pointer() if self.lfs else self._content_for_oid()
        return hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()

    def _content_for_oid(self) -> bytes:
        assert self.data is not None, "non-LFS files must be in memory"
        return self.data

    def read(self, start: int, end: int) -> bytes:
        if self.served is not None:
            return self.served[start:end]
        if self.data is not None:
            return self.data[start:end]
        with open(self.disk_path, "rb") as f:  # type: ignore[arg-type]
            f.seek(start)
            return f.read(end - start)

    @property
    def served_size(self) -> int:
        return len(self.served) if self.served is not None else self.size


@dataclass
class HubCommit:
    sha: str
    files: dict[str, HubFile]
    date: datetime


@dataclass
class HubRepo:
    repo_id: str
    author: str
    commits: list[HubCommit] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit sha
    tags_refs: set[str] = field(default_factory=set)  # which refs are tags
    default_branch: str = "main"
    private: bool = False
    gated: bool | str = False
    card_data: dict[str, Any] | None = None
    tags: list[str] = field(default_factory=list)
    library_name: str | None = None

    def resolve(self, rev: str | None) -> HubCommit | None:
        rev = rev or self.default_branch
        sha = self.refs.get(rev, rev)
        return next((c for c in self.commits if c.sha == sha), None)


@dataclass
class RequestRecord:
    method: str
    path: str
    status: int
    range: str | None
    authorization: bool
    bytes_sent: int
    server: str  # "hub" | "cdn"


class HubServer:
    """Start with :meth:`start` (a background thread with its own event loop)."""

    def __init__(self, *, cdn: bool = True) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.orgs: dict[str, bool] = {}  # organisation -> verified
        self.users: set[str] = set()
        self.tokens: dict[str, set[str]] = {}  # token -> repo ids it can read ("*" = all)
        self.requests: list[RequestRecord] = []
        self.throttle_remaining = 0
        self.throttle_match = ""
        self.throttle_retry_after: int | None = 0
        self.stall_seconds = 0.0
        self.stall_match = ""
        self.ignore_range = False
        self.ignore_blobs = False  # a mirror that lists names only (sizes via the tree API)
        self.cdn_signature = "test"  # the CDN refuses URLs signed otherwise (expiry tests)
        self.cdn_renew_after: int | None = None  # renew the signature after N CDN answers
        self._cdn_answers = 0
        self.tree_page_size = 1000
        # Misbehaving modes (see the module docstring).
        self.resolve_headers: dict[str, str] = {}
        self.endless_tree = False
        self.endless_tree_files = False
        self.tree_link_base = ""  # next-page links to another origin (a token-stealing mirror)
        self.model_info_padding = 0
        self.gzip_api = False
        self.trickle_api = ""  # API paths containing this never finish answering
        self.trickle_files = ""  # file paths containing this are sent one byte at a time
        self.trickle_interval = 0.05
        self.error_answers: dict[str, int] = {}
        self.use_cdn = cdn
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []
        self.url = ""
        self.cdn_url = ""

    # --- content ----------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes | HubFile],
        *,
        private: bool = False,
        gated: bool | str = False,
        card_data: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        git_tags: tuple[str, ...] = (),
        author: str | None = None,
    ) -> HubRepo:
        repo = HubRepo(
            repo_id,
            author or repo_id.split("/")[0],
            private=private,
            gated=gated,
            card_data=card_data,
            tags=list(tags or []),
        )
        self.repos[repo_id] = repo
        commit = self.push(repo_id, files)
        for tag in git_tags:
            repo.refs[tag] = commit.sha
            repo.tags_refs.add(tag)
        return repo

    def push(self, repo_id: str, files: dict[str, bytes | HubFile], branch: str = "main") -> HubCommit:
        repo = self.repos[repo_id]
        parent = repo.resolve(branch)
        merged = dict(parent.files) if parent else {}
        for path, value in files.items():
            merged[path] = value if isinstance(value, HubFile) else HubFile(path, data=value)
        seed = json.dumps(
            [repo_id, parent.sha if parent else None, sorted((p, f.sha256) for p, f in merged.items())]
        )
        sha = hashlib.sha1(seed.encode()).hexdigest()
        commit = HubCommit(sha, merged, datetime(2025, 1, 1 + len(repo.commits), tzinfo=UTC))
        repo.commits.append(commit)
        repo.refs[branch] = sha
        return commit

    def throttle(self, count: int, match: str = "", retry_after: int | None = 0) -> None:
        with self._lock:
            self.throttle_remaining = count
            self.throttle_match = match
            self.throttle_retry_after = retry_after

    def renew_cdn_signature_after(self, answers: int) -> None:
        """After ``answers`` more CDN answers, sign new URLs differently: URLs handed out
        before then expire (403), as the Hub's signed CDN URLs do."""
        self._cdn_answers = 0
        self.cdn_renew_after = answers

    def bytes_sent(self, path_contains: str = "") -> int:
        return sum(r.bytes_sent for r in self.requests if path_contains in r.path)

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> HubServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_sites())
            except BaseException as exc:  # pragma: no cover - surfaced to the caller
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_sites())
            loop.close()

        self._thread = threading.Thread(target=run, name="hf-test-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    async def _start_sites(self) -> None:
        hub = web.Application(client_max_size=1 << 20)
        hub.router.add_route("*", "/{tail:.*}", self._hub_handler)
        self.url = await self._serve(hub)
        if self.use_cdn:
            cdn = web.Application()
            cdn.router.add_route("*", "/{tail:.*}", self._cdn_handler)
            self.cdn_url = await self._serve(cdn)

    async def _serve(self, app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def _stop_sites(self) -> None:
        for runner in self._runners:
            await runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- helpers ----------------------------------------------------------------------

    def _record(self, request: web.Request, status: int, sent: int, server: str) -> None:
        self.requests.append(
            RequestRecord(
                request.method,
                request.path,
                status,
                request.headers.get("Range"),
                "Authorization" in request.headers,
                sent,
                server,
            )
        )

    def _error(self, request: web.Request, status: int, code: str | None, message: str) -> web.Response:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._record(request, status, 0, "hub")
        body = b"" if request.method == "HEAD" else json.dumps({"error": message}).encode()
        return web.Response(status=status, headers=headers, body=body, content_type="application/json")

    def _token(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _access(self, request: web.Request, repo: HubRepo | None, files: bool) -> web.Response | None:
        token = self._token(request)
        if token is not None and token not in self.tokens:
            return self._error(request, 401, None, "Invalid credentials in Authorization header")
        if repo is None:
            return self._error(request, 404, "RepoNotFound", "Repository not found")
        allowed = token is not None and ("*" in self.tokens[token] or repo.repo_id in self.tokens[token])
        if repo.private and not allowed:
            if token is None:
                return self._error(request, 401, "RepoNotFound", "Repository not found")
            return self._error(request, 404, "RepoNotFound", "Repository not found")
        if repo.gated and files and not allowed:
            message = (
                f"Access to model {repo.repo_id} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in."
            )
            return self._error(request, 401 if token is None else 403, "GatedRepo", message)
        return None

    def _throttled(self, request: web.Request) -> web.Response | None:
        with self._lock:
            if self.throttle_remaining <= 0 or self.throttle_match not in request.path:
                return None
            self.throttle_remaining -= 1
        headers = {
            "RateLimit": '"api";r=0;t=0',
            "RateLimit-Policy": '"fixed window";"api";q=500;w=300',
        }
        if self.throttle_retry_after is not None:
            headers["Retry-After"] = str(self.throttle_retry_after)
        self._record(request, 429, 0, "hub")
        return web.Response(status=429, headers=headers, text=json.dumps({"error": "rate limited"}))

    # --- hub --------------------------------------------------------------------------

    async def _hub_handler(self, request: web.Request) -> web.StreamResponse:
        if self.stall_seconds and self.stall_match in request.path:
            await asyncio.sleep(self.stall_seconds)
        if self.trickle_api and self.trickle_api in request.path:
            return await self._trickle_forever(request)
        throttled = self._throttled(request)
        if throttled is not None:
            return throttled
        for marker, status in self.error_answers.items():
            if request.method == "GET" and marker in request.path:
                return self._error(request, status, None, "from the test server")
        segments = [unquote(s) for s in request.raw_path.split("?", 1)[0].split("/")[1:]]
        try:
            return await self._route(request, segments)
        except web.HTTPException:
            raise
        except Exception as exc:  # pragma: no cover - a server bug shows as a 500
            return self._error(request, 500, None, f"test server error: {type(exc).__name__}: {exc}")

    async def _route(self, request: web.Request, seg: list[str]) -> web.StreamResponse:
        if seg[:2] == ["api", "models"] and len(seg) >= 4:
            repo_id = f"{seg[2]}/{seg[3]}"
            repo = self.repos.get(repo_id)
            rest = seg[4:]
            if not rest and request.method == "GET":
                return await self._model_info(request, repo, None)
            if rest[:1] == ["revision"] and len(rest) >= 2:
                return await self._model_info(request, repo, "/".join(rest[1:]))
            if rest[:1] == ["tree"] and len(rest) >= 2:
                return self._tree(request, repo, rest[1], "/".join(rest[2:]))
            if rest[:1] == ["paths-info"] and len(rest) >= 2 and request.method == "POST":
                return await self._paths_info(request, repo, "/".join(rest[1:]))
            if rest == ["refs"]:
                return self._refs(request, repo)
        if seg[:2] == ["api", "organizations"] and len(seg) == 4 and seg[3] == "overview":
            return self._org(request, seg[2])
        if seg[:2] == ["api", "users"] and len(seg) == 4 and seg[3] == "overview":
            return self._user(request, seg[2])
        if len(seg) >= 5 and seg[2] == "resolve":
            repo = self.repos.get(f"{seg[0]}/{seg[1]}")
            return await self._resolve(request, repo, seg[3], "/".join(seg[4:]))
        return self._error(request, 404, None, f"no such endpoint: {request.method} {request.path}")

    def _commit_or_error(
        self, request: web.Request, repo: HubRepo | None, rev: str | None, files: bool
    ) -> tuple[HubRepo, HubCommit] | web.Response:
        denied = self._access(request, repo, files)
        if denied is not None:
            return denied
        assert repo is not None
        commit = repo.resolve(rev)
        if commit is None:
            return self._error(request, 404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return repo, commit

    def _json(
        self, request: web.Request, payload: Any, headers: dict[str, str] | None = None
    ) -> web.Response:
        body = json.dumps(payload).encode()
        if self.gzip_api:
            body = zlib.compress(body, wbits=31)
            headers = {**(headers or {}), "Content-Encoding": "gzip"}
        self._record(request, 200, len(body), "hub")
        return web.Response(body=body, content_type="application/json", headers=headers)

    async def _padded_json(self, request: web.Request, payload: Any, padding: int) -> web.StreamResponse:
        """``payload`` with ``padding`` bytes of whitespace after its opening brace (still
        valid JSON), streamed: an answer of any size without holding it in memory."""
        text = json.dumps(payload).encode()
        pieces = [text[:1], *([b" " * CHUNK] * (padding // CHUNK)), b" " * (padding % CHUNK), text[1:]]
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        packer = zlib.compressobj(9, zlib.DEFLATED, 31) if self.gzip_api else None
        if packer is not None:
            response.headers["Content-Encoding"] = "gzip"
        await response.prepare(request)
        sent = 0
        try:
            for piece in pieces:
                data = packer.compress(piece) if packer is not None else piece
                if data:
                    await response.write(data)
                    sent += len(data)
            if packer is not None:
                tail = packer.flush()
                await response.write(tail)
                sent += len(tail)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the client stopped reading: what a bounded client does
        self._record(request, 200, sent, "hub")
        return response

    async def _trickle_forever(self, request: web.Request) -> web.StreamResponse:
        """200, then JSON whitespace one byte at a time until the client goes away: never
        silent long enough for a between-bytes timeout, never complete."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        sent = 0
        try:
            while True:
                await response.write(b" ")
                sent += 1
                await asyncio.sleep(self.trickle_interval)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        self._record(request, 200, sent, "hub")
        return response

    async def _model_info(
        self, request: web.Request, repo: HubRepo | None, rev: str | None
    ) -> web.StreamResponse:
        found = self._commit_or_error(request, repo, rev, files=False)
        if isinstance(found, web.Response):
            return found
        repo, commit = found
        blobs = request.query.get("blobs", "").lower() == "true" and not self.ignore_blobs
        siblings = []
        for path in sorted(commit.files):
            f = commit.files[path]
            entry: dict[str, Any] = {"rfilename": path}
            if blobs:
                entry["size"] = f.size
                entry["blobId"] = f.oid
                if f.lfs:
                    entry["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": len(f.pointer())}
            siblings.append(entry)
        payload: dict[str, Any] = {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.author,
            "sha": commit.sha,
            "lastModified": commit.date.isoformat().replace("+00:00", ".000Z"),
            "createdAt": repo.commits[0].date.isoformat().replace("+00:00", ".000Z"),
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "library_name": repo.library_name,
            "tags": repo.tags,
            "pipeline_tag": None,
            "siblings": siblings,
            "spaces": [],
            "usedStorage": sum(f.size for f in commit.files.values()),
        }
        if repo.card_data is not None:
            payload["cardData"] = repo.card_data
        if self.model_info_padding:
            return await self._padded_json(request, payload, self.model_info_padding)
        return self._json(request, payload)

    def _entry(self, f: HubFile) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": f.oid, "size": f.size, "path": f.path}
        if f.lfs:
            entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": len(f.pointer())}
        return entry

    def _folder(self, path: str) -> dict[str, Any]:
        return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}

    def _listing(self, commit: HubCommit, base: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = base.strip("/") + "/" if base.strip("/") else ""
        out: list[dict[str, Any]] = []
        folders: set[str] = set()
        for path in sorted(commit.files):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                if folder not in folders and (recursive or depth == 1):
                    folders.add(folder)
                    out.append(self._folder(folder))
            if recursive or len(parts) == 1:
                out.append(self._entry(commit.files[path]))
        return out

    def _tree(self, request: web.Request, repo: HubRepo | None, rev: str, base: str) -> web.Response:
        found = self._commit_or_error(request, repo, rev, files=False)
        if isinstance(found, web.Response):
            return found
        repo, commit = found
        recursive = request.query.get("recursive", "").lower() == "true"
        if base and not any(p == base or p.startswith(base.rstrip("/") + "/") for p in commit.files):
            return self._error(request, 404, "EntryNotFound", f"{base} does not exist on {rev}")
        listing = self._listing(commit, base, recursive)
        start = int(request.query.get("cursor", "0") or 0)
        page = listing[start : start + self.tree_page_size]
        if self.endless_tree_files and start >= len(listing):
            page = [
                self._entry(HubFile(f"more/f{n}.json", data=b"{}"))
                for n in range(start, start + self.tree_page_size)
            ]
        headers = {}
        if start + self.tree_page_size < len(listing) or self.endless_tree or self.endless_tree_files:
            query = dict(request.query)
            query["cursor"] = str(start + self.tree_page_size)
            headers["Link"] = (
                f'<{self.tree_link_base or self.url}{request.path}?{urlencode(query)}>; rel="next"'
            )
        return self._json(request, page, headers)

    async def _paths_info(self, request: web.Request, repo: HubRepo | None, rev: str) -> web.Response:
        found = self._commit_or_error(request, repo, rev, files=False)
        if isinstance(found, web.Response):
            return found
        repo, commit = found
        form = await request.post()
        paths = [str(p) for p in form.getall("paths", [])]
        out = []
        for path in paths:
            if path in commit.files:
                out.append(self._entry(commit.files[path]))
            elif any(p.startswith(path.rstrip("/") + "/") for p in commit.files):
                out.append(self._folder(path))
        return self._json(request, out)

    def _refs(self, request: web.Request, repo: HubRepo | None) -> web.Response:
        denied = self._access(request, repo, files=False)
        if denied is not None:
            return denied
        assert repo is not None
        branches = [
            {"name": n, "ref": f"refs/heads/{n}", "targetCommit": s}
            for n, s in repo.refs.items()
            if n not in repo.tags_refs
        ]
        tags = [
            {"name": n, "ref": f"refs/tags/{n}", "targetCommit": s}
            for n, s in repo.refs.items()
            if n in repo.tags_refs
        ]
        return self._json(request, {"branches": branches, "tags": tags, "converts": []})

    def _org(self, request: web.Request, name: str) -> web.Response:
        if name not in self.orgs:
            return self._error(request, 404, None, "Organization not found")
        return self._json(
            request,
            {
                "avatarUrl": "",
                "name": name,
                "fullname": name.title(),
                "isVerified": self.orgs[name],
                "numModels": sum(1 for r in self.repos.values() if r.author == name),
            },
        )

    def _user(self, request: web.Request, name: str) -> web.Response:
        if name not in self.users:
            return self._error(request, 404, None, "User not found")
        return self._json(request, {"avatarUrl": "", "user": name, "fullname": name, "isPro": False})

    async def _resolve(
        self, request: web.Request, repo: HubRepo | None, rev: str, path: str
    ) -> web.StreamResponse:
        found = self._commit_or_error(request, repo, rev, files=True)
        if isinstance(found, web.Response):
            return found
        repo, commit = found
        f = commit.files.get(path)
        if f is None:
            return self._error(request, 404, "EntryNotFound", f"{path} does not exist on {rev}")
        headers = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
        if f.lfs and self.use_cdn:
            headers.update(
                {
                    "X-Linked-Etag": f'"{f.sha256}"',
                    "X-Linked-Size": str(f.size),
                    "ETag": f'"{f.oid}"',
                    "Location": f"{self.cdn_url}/cdn/{repo.repo_id}/{commit.sha}/{quote(path)}?X-Amz-Signature={self.cdn_signature}",
                }
            )
            headers.update(self.resolve_headers)
            self._record(request, 302, 0, "hub")
            return web.Response(status=302, headers=headers)
        headers["ETag"] = f'"{f.sha256 if f.lfs else f.oid}"'
        if f.lfs:
            headers["X-Linked-Etag"] = f'"{f.sha256}"'
            headers["X-Linked-Size"] = str(f.size)
        headers.update(self.resolve_headers)
        return await self._send(request, f, headers, "hub")

    async def _cdn_handler(self, request: web.Request) -> web.StreamResponse:
        seg = [unquote(s) for s in request.raw_path.split("?", 1)[0].split("/")[1:]]
        self._cdn_answers += 1
        if self.cdn_renew_after is not None and self._cdn_answers > self.cdn_renew_after:
            self.cdn_signature = f"renewed-{self._cdn_answers}"  # earlier URLs have expired
            self.cdn_renew_after = None
        if request.query.get("X-Amz-Signature") != self.cdn_signature:
            self._record(request, 403, 0, "cdn")
            return web.Response(status=403, text="Request has expired")
        if len(seg) < 5 or seg[0] != "cdn":
            self._record(request, 404, 0, "cdn")
            return web.Response(status=404)
        repo = self.repos.get(f"{seg[1]}/{seg[2]}")
        commit = repo.resolve(seg[3]) if repo else None
        f = commit.files.get("/".join(seg[4:])) if commit else None
        if f is None:
            self._record(request, 404, 0, "cdn")
            return web.Response(status=404)
        return await self._send(request, f, {"ETag": f'"{f.sha256}"', "Accept-Ranges": "bytes"}, "cdn")

    async def _send(
        self, request: web.Request, f: HubFile, headers: dict[str, str], server: str
    ) -> web.StreamResponse:
        size = f.served_size
        start, end = 0, size
        status = 200
        range_header = request.headers.get("Range")
        if range_header and not self.ignore_range:
            parsed = _parse_range(range_header, size)
            if parsed is None:
                self._record(request, 416, 0, server)
                return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        response = web.StreamResponse(status=status, headers=headers)
        response.content_type = "application/octet-stream"
        await response.prepare(request)
        sent = 0
        if request.method != "HEAD":
            loop = asyncio.get_running_loop()
            pos = start
            trickle = bool(self.trickle_files) and self.trickle_files in request.path
            try:
                while pos < end:
                    if trickle:
                        await response.write(f.read(pos, pos + 1))
                        pos += 1
                        sent += 1
                        await asyncio.sleep(self.trickle_interval)
                        continue
                    n = min(CHUNK, end - pos)
                    data = (
                        await loop.run_in_executor(None, f.read, pos, pos + n)
                        if f.disk_path
                        else f.read(pos, pos + n)
                    )
                    await response.write(data)
                    pos += len(data)
                    sent += len(data)
                await response.write_eof()
            except (ConnectionResetError, asyncio.CancelledError):
                pass  # the client stopped reading (it had what it wanted)
        self._record(request, status, sent, server)
        return response


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, end) of a single ``bytes=`` range, or None if unsatisfiable."""
    if not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    if first == "":
        if not last.isdigit() or int(last) == 0:
            return None
        return max(0, size - int(last)), size
    if not first.isdigit() or int(first) >= size:
        return None
    end = size if last == "" else min(size, int(last) + 1)
    if last and (not last.isdigit() or int(last) < int(first)):
        return None
    return int(first), end
