"""Putting it together: informers, the HTTPS admission server, the metrics server.

Everything runs on one event loop: the informers' watch streams, the admission handler
(synchronous and short: it never awaits anything but the request body) and the background
side effects. One process per core is the scaling unit; see docs/webhook.md.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelsec.safe_text import printable
from modelsec_webhook import metrics
from modelsec_webhook.admission import Admission, AdmissionSettings, Answer, BadReview, NeedConfigMaps
from modelsec_webhook.configmaps import ConfigMapReader
from modelsec_webhook.decision import Decision
from modelsec_webhook.firstdeploy import FirstDeploy, WaitSettings, request_timeout
from modelsec_webhook.freshness import DEFAULT_HEARTBEAT, DEFAULT_MAX_STALENESS, Freshness, Heartbeat
from modelsec_webhook.informer import Informer, Resource
from modelsec_webhook.kubeapi import KubeAPI
from modelsec_webhook.mutation import MutateAnswer, Mutator
from modelsec_webhook.sideeffects import EventRecorder, ScanRequester
from modelsec_webhook.tls import ServingCertificate, keep_ca_bundle
from modelsec_webhook.view import View, sinks

log = logging.getLogger("modelsec.webhook")


A = TypeVar("A", Answer, MutateAnswer)


def _settled_now(answer: Callable[[bool], A | NeedConfigMaps]) -> A:
    outcome = answer(True)  # ConfigMaps were read (or given up on) already
    assert not isinstance(outcome, NeedConfigMaps)
    return outcome


def started_monotonic(started_perf: float) -> float:
    """A perf_counter() start as a monotonic() time (the wait's deadlines use the latter)."""
    return time.monotonic() - (time.perf_counter() - started_perf)


RESOURCES = (
    Resource("modelsources", "/apis/modelsec.io/v1alpha1/modelsources"),
    Resource("securitygroups", "/apis/modelsec.io/v1alpha1/securitygroups"),
    Resource("modelscans", "/apis/modelsec.io/v1alpha1/modelscans"),
    Resource("namespaces", "/api/v1/namespaces"),
)
MAX_REVIEW_BYTES = 16 * 1024 * 1024  # object + oldObject of the largest objects etcd holds


@dataclass
class ServerConfig:
    """The webhook's settings: ports, TLS, admission, watches, staleness and first-deploy waits."""

    port: int = 8443
    bind_address: str = "0.0.0.0"
    metrics_port: int = 9091
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_check_seconds: float = 10.0
    ca_bundle: str | None = None  # bootstrapped CA to keep in the webhook configuration
    webhook_config_name: str | None = None
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)
    watch_seconds: int = 300
    max_staleness: float = DEFAULT_MAX_STALENESS  # seconds the view may lag and still decide
    heartbeat_seconds: float = DEFAULT_HEARTBEAT
    first_deploy: WaitSettings = field(default_factory=WaitSettings)


class Webhook:
    """The running webhook; :meth:`run` serves until :meth:`stop`."""

    def __init__(self, config: ServerConfig, api: KubeAPI) -> None:
        self.config = config
        self.api = api
        self.view = View()
        view_sinks = sinks(self.view)
        self.informers = [
            Informer(api, resource, view_sinks[resource.name], watch_seconds=config.watch_seconds)
            for resource in RESOURCES
        ]
        self.heartbeat = Heartbeat(api, self.informers, config.heartbeat_seconds)
        self.freshness = Freshness(self.informers, self.heartbeat, config.max_staleness)
        self.scans = ScanRequester(api, self.view)
        self.events = EventRecorder(api)
        self.configmaps = ConfigMapReader(api)
        self.admission = Admission(
            self.view,
            config.admission,
            request_scans=self._request_scans,
            record_events=self._record_events,
            staleness=self.freshness.problem,
            configmaps=self.configmaps,
        )
        self.mutator = Mutator(self.admission, self._record_pins)
        self.first_deploy = FirstDeploy(self.view, config.first_deploy)
        self.certificate: ServingCertificate | None = None
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._review_counters: dict[tuple[str, str], Callable[[], None]] = {}

    # -- state ------------------------------------------------------------------------

    def synced(self) -> bool:
        return all(informer.synced.is_set() for informer in self.informers)

    def ready(self) -> bool:
        return self.freshness.problem() is None

    def _request_scans(self, decision: Decision, requested_by: str) -> None:
        for wanted in decision.scans:
            self.scans.request(wanted, requested_by)

    def _record_events(self, decision: Decision, involved: dict[str, str]) -> None:
        for message in decision.events:
            self.events.record(involved, message)

    def _record_pins(self, involved: dict[str, str], message: str) -> None:
        self.events.record(involved, message, reason="ModelPinned", type_="Normal")

    # -- HTTP handlers ------------------------------------------------------------------

    async def validate(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        body = await request.read()
        try:
            parsed = self.admission.parse(body)
        except BadReview as exc:
            return self._refused(request, exc)
        if isinstance(parsed, Answer):
            answer = parsed
        else:
            outcome = self.admission.answer(parsed)
            if isinstance(outcome, NeedConfigMaps) or outcome.waiting:  # rare: off the hot path
                outcome = await self._settled(
                    request, started, outcome, lambda fetched: self.admission.answer(parsed, fetched)
                )
            answer = outcome
        elapsed = time.perf_counter() - started
        (metrics.OBSERVE_MODELS if answer.models else metrics.OBSERVE_NO_MODELS)(elapsed)
        self._count("allowed" if answer.allowed else "denied", answer.reason)
        return web.Response(
            body=answer.body,
            content_type="application/json",
            # Server-side time, for the load benchmark and for anyone with curl -v.
            headers={"Server-Timing": f"admit;dur={elapsed * 1000:.3f}"},
        )

    async def mutate(self, request: web.Request) -> web.Response:
        """Pin references and add verifiers (``spec.enforcement.pin``/``verifyAtStart``)."""
        started = time.perf_counter()
        body = await request.read()
        try:
            parsed = self.admission.parse(body)
        except BadReview as exc:
            return self._refused(request, exc)
        if isinstance(parsed, Answer):
            return web.Response(body=parsed.body, content_type="application/json")
        outcome = self.mutator.answer(parsed)
        if isinstance(outcome, NeedConfigMaps) or outcome.waiting:
            outcome = await self._settled(
                request, started, outcome, lambda fetched: self.mutator.answer(parsed, fetched)
            )
        answer = outcome
        elapsed = time.perf_counter() - started
        return web.Response(
            body=answer.body,
            content_type="application/json",
            headers={"Server-Timing": f"admit;dur={elapsed * 1000:.3f}"},
        )

    async def _settled(
        self,
        request: web.Request,
        started: float,
        outcome: A | NeedConfigMaps,
        answer: Callable[[bool], A | NeedConfigMaps],
    ) -> A:
        """The final answer to a parsed review whose first ``outcome`` asked for more: the
        one read a decision may need (ConfigMaps naming a model, where a group applies;
        bounded by the reader's timeout, then decided either way) and, for a denial that
        only lacks verdicts, the wait for them (first deploy)."""
        if isinstance(outcome, NeedConfigMaps):
            await self.configmaps.fetch(outcome.namespace, outcome.names)
            outcome = answer(True)
        assert not isinstance(outcome, NeedConfigMaps)
        if outcome.waiting:
            outcome = await self.first_deploy.wait(
                outcome,
                lambda: _settled_now(answer),
                request_timeout(request.query.get("timeout")),
                started_monotonic(started),
            )
        return outcome

    def _refused(self, request: web.Request, exc: BadReview) -> web.Response:
        # One line per refused body, and a 400: there is no uid to answer with.
        self._count("invalid-request", "invalid-request")
        log.warning(f"refused a request from {printable(str(request.remote))}: {printable(str(exc)[:300])}")
        return web.Response(status=400, text=f"modelsec webhook: {exc}\n")

    def _count(self, decision: str, reason: str) -> None:
        counter = self._review_counters.get((decision, reason))
        if counter is None:
            counter = self._review_counters[(decision, reason)] = metrics.REVIEWS.labels(decision, reason).inc
        counter()

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, _request: web.Request) -> web.Response:
        problem = self.freshness.problem(detail=True)
        if problem is not None:
            return web.Response(status=503, text=f"not ready: {printable(problem)}\n")
        return web.Response(text="ok\n")

    async def serve_metrics(self, _request: web.Request) -> web.Response:
        metrics.READY.set(1 if self.ready() else 0)
        self.freshness.publish()
        return web.Response(
            body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    def admission_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REVIEW_BYTES)
        app.router.add_post("/validate", self.validate)
        app.router.add_post("/mutate", self.mutate)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        return app

    def metrics_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.serve_metrics)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        return app

    # -- lifecycle ------------------------------------------------------------------------

    def _spawn(self, coroutine: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # A background loop must never die quietly: the view would go stale.
            log.error(f"{task.get_name()} stopped: {task.exception()!r}; shutting down")
            self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self, started: Callable[[], None] | None = None) -> None:
        config = self.config
        if config.cert_file is None or config.key_file is None:
            raise ValueError("a serving certificate is required (--tls-cert/--tls-key or --bootstrap-tls)")
        self.certificate = ServingCertificate(config.cert_file, config.key_file, config.tls_check_seconds)
        for informer in self.informers:
            self._spawn(informer.run(), f"informer:{informer.resource.name}")
        self._spawn(self.heartbeat.run(), "heartbeat")
        self._spawn(self.certificate.watch(), "tls-reload")
        if config.ca_bundle and config.webhook_config_name:
            self._spawn(keep_ca_bundle(self.api, config.webhook_config_name, config.ca_bundle), "ca-bundle")

        runners: list[web.AppRunner] = []
        # No access log: one line per admission request is the cost of the hot path.
        admission = web.AppRunner(self.admission_app(), access_log=None, handle_signals=False)
        await admission.setup()
        runners.append(admission)
        await web.TCPSite(
            admission, config.bind_address, config.port, ssl_context=self.certificate.context, backlog=1024
        ).start()
        if config.metrics_port:
            plain = web.AppRunner(self.metrics_app(), access_log=None, handle_signals=False)
            await plain.setup()
            runners.append(plain)
            await web.TCPSite(plain, config.bind_address, config.metrics_port).start()
        log.info(
            f"serving admission reviews on https://{config.bind_address}:{config.port}/validate"
            + (
                f", metrics on http://{config.bind_address}:{config.metrics_port}/metrics"
                if config.metrics_port
                else ""
            )
        )
        if started is not None:
            started()
        try:
            await self._stopping.wait()
        finally:
            log.info("stopping")
            for runner in runners:
                await runner.cleanup()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.scans.background.drain(timeout=5)
            await self.events.background.drain(timeout=2)
            await self.api.close()


def install_signal_handlers(webhook: Webhook) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, webhook.stop)
