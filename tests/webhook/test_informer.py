"""List + watch protocol handling, against a scripted HTTP server speaking the API
server's list and watch formats (a unit test of the reflector logic; the cluster tests
run it against a real kube-apiserver)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web
from kubernetes.client import Configuration

from modelsec_webhook.informer import Informer, Resource
from modelsec_webhook.kubeapi import KubeAPI

PATH = "/apis/modelsec.io/v1alpha1/modelscans"


def obj(name: str, rv: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": str(rv)}}


class Sink:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.replaced = 0

    def replace(self, items: list[dict[str, Any]]) -> None:
        self.replaced += 1
        self.items = {i["metadata"]["name"]: i for i in items}

    def upsert(self, o: dict[str, Any]) -> None:
        self.items[o["metadata"]["name"]] = o

    def delete(self, o: dict[str, Any]) -> None:
        self.items.pop(o["metadata"]["name"], None)


class ScriptedApiServer:
    """Lists in pages; each watch request gets the next scripted list of events (an
    ``int`` item is an HTTP status answered instead of a stream)."""

    def __init__(self, watches: list[Any]) -> None:
        self.watches = watches
        self.lists: list[dict[str, str]] = []
        self.watch_params: list[dict[str, str]] = []
        self.listed = asyncio.Event()
        self.done = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        if params.get("watch") != "1":
            self.lists.append(params)
            self.listed.set()
            if "continue" not in params:
                return web.json_response(
                    {"metadata": {"continue": "page2", "resourceVersion": "10"}, "items": [obj("a", 5)]}
                )
            return web.json_response({"metadata": {"resourceVersion": "10"}, "items": [obj("b", 7)]})
        self.watch_params.append(params)
        if not self.watches:
            self.done.set()
            await asyncio.sleep(3600)
        script = self.watches.pop(0)
        if isinstance(script, int):
            return web.json_response({"kind": "Status", "code": script, "reason": "Expired"}, status=script)
        response = web.StreamResponse()
        await response.prepare(request)
        for event in script:
            await response.write(json.dumps(event).encode() + b"\n")
        return response


async def run_against(server: ScriptedApiServer, sink: Sink | None = None) -> tuple[Sink, Informer]:
    app = web.Application()
    app.router.add_get(PATH, server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)  # the last watch never ends by itself
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    configuration = Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    api = KubeAPI(configuration)
    sink = sink or Sink()
    informer = Informer(api, Resource("modelscans", PATH), sink, page_size=1, max_backoff=0.05)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(server.done.wait(), timeout=20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await api.close()
        await runner.cleanup()
    return sink, informer


async def test_lists_in_pages_then_follows_events_and_bookmarks() -> None:
    server = ScriptedApiServer(
        [
            [
                {"type": "ADDED", "object": obj("c", 11)},
                {"type": "MODIFIED", "object": {**obj("a", 12), "status": {"phase": "Completed"}}},
                {"type": "DELETED", "object": obj("b", 13)},
                {"type": "BOOKMARK", "object": obj("", 20)},
            ]
        ]
    )
    sink, informer = await run_against(server)
    assert [p.get("continue") for p in server.lists] == [None, "page2"]
    assert informer.synced.is_set() and sink.replaced == 1
    assert sorted(sink.items) == ["a", "c"] and sink.items["a"]["status"] == {"phase": "Completed"}
    first, resumed = server.watch_params
    assert first["resourceVersion"] == "10" and first["allowWatchBookmarks"] == "true"
    assert resumed["resourceVersion"] == "20"  # the stream ended: resume, do not re-list


async def test_expired_resource_version_event_lists_again() -> None:
    server = ScriptedApiServer(
        [
            [
                {"type": "ADDED", "object": obj("c", 11)},
                {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}},
            ],
        ]
    )
    sink, _ = await run_against(server)
    assert sink.replaced == 2 and len(server.lists) == 4
    assert [p["resourceVersion"] for p in server.watch_params] == ["10", "10"]


async def test_gone_status_on_the_watch_request_lists_again() -> None:
    server = ScriptedApiServer([410])
    sink, _ = await run_against(server)
    assert sink.replaced == 2


async def test_server_errors_are_retried_from_the_same_version() -> None:
    server = ScriptedApiServer([500, 503, [{"type": "ADDED", "object": obj("d", 15)}]])
    sink, _ = await run_against(server)
    assert sink.replaced == 1 and "d" in sink.items
    assert [p["resourceVersion"] for p in server.watch_params] == ["10", "10", "10", "15"]


async def test_a_bad_object_does_not_stop_the_watch() -> None:
    class Fussy(Sink):
        def upsert(self, o: dict[str, Any]) -> None:
            if o["metadata"]["name"] == "bad":
                raise ValueError("unreadable")
            super().upsert(o)

    server = ScriptedApiServer(
        [[{"type": "ADDED", "object": obj("bad", 11)}, {"type": "ADDED", "object": obj("good", 12)}]]
    )
    sink, _ = await run_against(server, Fussy())
    assert "good" in sink.items and server.watch_params[-1]["resourceVersion"] == "12"


# --- outages: staleness and prompt resync (issue 10, item 3) ----------------------------------


class RestartableApiServer:
    """Lists one object, holds every watch open, answers /readyz; can be stopped and
    started again on the same port, as a restarted API server is."""

    def __init__(self) -> None:
        self.lists = 0
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def list_or_watch(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "1":
            self.lists += 1
            return web.json_response(
                {"metadata": {"resourceVersion": str(10 + self.lists)}, "items": [obj("a", 5)]}
            )
        response = web.StreamResponse()
        await response.prepare(request)
        await asyncio.sleep(3600)
        return response

    async def readyz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(PATH, self.list_or_watch)
        app.router.add_get("/readyz", self.readyz)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def until(condition: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_an_outage_makes_the_view_stale_and_recovery_lists_again_at_once() -> None:
    from modelsec_webhook.freshness import Freshness, Heartbeat

    server = RestartableApiServer()
    await server.start()
    configuration = Configuration()
    configuration.host = f"http://127.0.0.1:{server.port}"
    api = KubeAPI(configuration)

    class Patient(Informer):
        def backoff(self, failures: int) -> float:
            return 600.0  # far longer than the test: only the heartbeat can bring it back

    informer = Patient(api, Resource("modelscans", PATH), Sink())
    heartbeat = Heartbeat(api, [informer], interval=0.1, timeout=0.5)
    freshness = Freshness([informer], heartbeat, max_staleness=1.0)
    tasks = [asyncio.create_task(informer.run()), asyncio.create_task(heartbeat.run())]
    try:
        await until(lambda: informer.synced.is_set() and freshness.problem() is None)
        assert server.lists == 1

        await server.stop()  # the API server goes away
        await until(lambda: freshness.problem() is not None)
        assert "more than the 1s it decides on" in (freshness.problem() or "")
        await until(lambda: not informer.current)  # failed, now sleeping for 600 s

        await server.start()  # ...and comes back on the same address
        await until(lambda: server.lists == 2 and freshness.problem() is None, timeout=10)
        assert informer.current and informer.resource_version == "12"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await api.close()
        await server.stop()


async def test_a_view_older_than_the_bound_is_stale_even_if_the_watch_looks_alive() -> None:
    from modelsec_webhook.freshness import Freshness, Heartbeat

    class Silent:
        async def request(self, *_: Any, **__: Any) -> dict[str, Any]:
            raise TimeoutError()  # the heartbeat gets no answer: a frozen server

    informer = Informer(KubeAPI(Configuration()), Resource("modelscans", PATH), Sink())
    informer.synced.set()
    informer.current = True  # its stream has not noticed anything
    heartbeat = Heartbeat(Silent(), [informer])  # type: ignore[arg-type]
    freshness = Freshness([informer], heartbeat, max_staleness=5.0)
    heartbeat.last_ok = time.monotonic() - 0.5
    assert freshness.problem() is None
    heartbeat.last_ok = time.monotonic() - 6
    assert await heartbeat.beat() is False
    assert "the API server does not answer" in (freshness.problem() or "")
    await informer.api.close()
