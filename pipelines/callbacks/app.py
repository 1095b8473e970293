"""The callback service's web app (Starlette, served by uvicorn).

- `POST /plivo/status`: delivery receipts; `POST /plivo/inbound`: inbound texts, answered with
  Plivo XML; both must carry a valid Plivo signature for `CALLBACK_PUBLIC_URL` + the path.
- `GET /c/{code}` (and `GET /{code}`, for a dedicated short-link domain): records the click
  and redirects to the link's stored target; an unknown code is 404.
- `GET /healthz`.

Order of work for every event: check size, signature and form; act (suppress, credit); write
the event to the log and wait for the fsync; only then answer 200 (or 302). A refusal is
written to the rejects log, never to the event log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from pipelines.callbacks import signatures
from pipelines.callbacks.config import CallbackSettings
from pipelines.callbacks.eventlog import EventLog, utc_now
from pipelines.callbacks.handlers import (
    BadCallback,
    CallbackContext,
    Handled,
    handle_click,
    handle_inbound,
    status_record,
)
from pipelines.callbacks.rejects import record_reject
from pipelines.callbacks.replies import ReplyBranding

log = logging.getLogger(__name__)

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 100


class Refused(Exception):
    def __init__(self, status: int, reason: str, body: bytes | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.body = status, reason, body


class CallbackService:
    """The service's state: settings, the event log and the handlers' context."""

    def __init__(self, settings: CallbackSettings, clock: Callable[[], dt.datetime] = utc_now):
        self.settings = settings
        self.clock = clock
        self.events = EventLog(settings.events_dir, "cb", rotate_seconds=settings.rotate_seconds)
        self.ctx: CallbackContext | None = None

    def start(self) -> None:
        if self.settings.skip_signatures:
            log.warning(
                "CALLBACK_INSECURE_SKIP_SIGNATURES is set: callbacks are NOT authenticated. "
                "Local development only; never expose this service."
            )
        self.ctx = CallbackContext.open(
            self.settings.events_dir,
            ReplyBranding(self.settings.brand_name, self.settings.support_contact),
        )
        self.events.start()
        # Credits a crash left out of the log (committed, not yet logged) go in first.
        for inbound_uuid, record in self.ctx.points.unlogged():
            self.events.write([record])
            self.ctx.points.mark_logged(inbound_uuid)

    def stop(self) -> None:
        self.events.close()
        if self.ctx is not None:
            self.ctx.close()

    # --- request plumbing ------------------------------------------------------------------

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise Refused(400, "invalid Content-Length")
            if int(declared) > limit:
                raise Refused(413, f"body of {declared} bytes exceeds the {limit}-byte limit")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, f"body exceeds the {limit}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _signed_form(self, request: Request) -> dict[str, str]:
        body = await self._body(request)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != FORM_TYPE:
            raise Refused(
                415, f"content type {content_type or 'missing'}: expected {FORM_TYPE}", body
            )
        try:
            pairs = parse_qsl(
                body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise Refused(400, f"unreadable form: {exc}", body) from None
        params: dict[str, list[str]] = {}
        for key, value in pairs:
            params.setdefault(key, []).append(value)
        if not self.settings.skip_signatures:
            url = self.settings.public_url_for(request.url.path, request.url.query)
            verdict = signatures.verify(
                request.method,
                url,
                params,
                dict(request.headers),
                self.settings.auth_token or "",
            )
            if not verdict.ok:
                raise Refused(403, verdict.reason, body)
        return {key: values[0] for key, values in params.items()}

    async def _reject(self, request: Request, refused: Refused) -> Response:
        log.warning("refused %s: %s (%d)", request.url.path, refused.reason, refused.status)
        headers = request.headers
        signature = (
            "v3"
            if "x-plivo-signature-v3" in headers
            else "v2"
            if "x-plivo-signature-v2" in headers
            else None
        )
        await run_in_threadpool(
            record_reject,
            self.settings.events_dir,
            self.clock(),
            request.url.path,
            refused.status,
            refused.reason,
            body=refused.body,
            client=request.client.host if request.client else None,
            signature=signature,
        )
        return PlainTextResponse(refused.reason, status_code=refused.status)

    async def _log(self, record: dict) -> None:
        # Waits for the writer thread's fsync; an error here becomes a 500, which Plivo retries.
        await asyncio.wrap_future(self.events.append([record]))

    # --- endpoints ---------------------------------------------------------------------------

    async def status(self, request: Request) -> Response:
        try:
            form = await self._signed_form(request)
            record = status_record(form, self.clock())
        except Refused as refused:
            return await self._reject(request, refused)
        except BadCallback as exc:
            return await self._reject(request, Refused(400, str(exc)))
        await self._log(record)
        return PlainTextResponse("OK")

    async def inbound(self, request: Request) -> Response:
        assert self.ctx is not None, "the service has not started"
        try:
            form = await self._signed_form(request)
            handled: Handled = await run_in_threadpool(handle_inbound, form, self.ctx, self.clock())
        except Refused as refused:
            return await self._reject(request, refused)
        except BadCallback as exc:
            return await self._reject(request, Refused(400, str(exc)))
        await self._log(handled.record)
        await run_in_threadpool(handled.logged)
        return Response(handled.xml, media_type="application/xml")

    async def click(self, request: Request) -> Response:
        assert self.ctx is not None, "the service has not started"
        code = request.path_params["code"]
        found = await run_in_threadpool(
            handle_click, code, request.headers.get("user-agent"), self.ctx, self.clock()
        )
        if found is None:
            return PlainTextResponse("Not found", status_code=404)
        await self._log(found.record)
        return RedirectResponse(
            found.link.target_url,
            status_code=302,
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "signatures": not self.settings.skip_signatures})


def create_app(settings: CallbackSettings, clock: Callable[[], dt.datetime] = utc_now) -> Starlette:
    service = CallbackService(settings, clock)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        await run_in_threadpool(service.start)
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    app = Starlette(
        routes=[
            Route("/healthz", service.healthz, methods=["GET"]),
            Route("/plivo/status", service.status, methods=["POST"]),
            Route("/plivo/inbound", service.inbound, methods=["POST"]),
            Route("/c/{code}", service.click, methods=["GET"]),
            Route("/{code}", service.click, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    return app
