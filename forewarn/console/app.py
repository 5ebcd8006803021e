"""The console's FastAPI application: REST API, web pages, ``/metrics`` and ``/docs``.

Usage::

    app = create_app(ConsoleContext(engine=connect(url), store=store, rules_files=(path,)))
    uvicorn.run(app, host="127.0.0.1", port=8080)

>>> from rules.db import connect
>>> engine = connect("sqlite://")
>>> app = create_app(ConsoleContext(engine=engine))
>>> "/api/v1/cases/{case_id}/acknowledge" in app.openapi()["paths"]
True
>>> engine.dispose()
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.store.base import StoreError
from forewarn.console import proactivity_page, status_page, web
from forewarn.console.api import router as api_router
from forewarn.console.context import ConsoleContext
from forewarn.console.guard import RequestGuard

__all__ = ["create_app"]

_HERE = Path(__file__).parent

_DESCRIPTION = """\
forewarn's support API: the cases it opened (with evidence), the devices and their telemetry with
anomaly scores, the rules in force and the outbox of notices.

Every call needs `Authorization: Bearer fw_…`, a token made with
`forewarn tokens create --tenant ACME --role viewer|agent|admin`. A token sees only its tenant.
Viewers read; agents also acknowledge, assign, note and resolve cases and validate rules files;
admins also retry failed notices.
"""


#: uPlot sets inline styles on its elements; scripts come only from /static
_PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
             "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def create_app(ctx: ConsoleContext) -> FastAPI:
    """The application serving ``ctx``."""
    app = FastAPI(title="forewarn support API", version="1", description=_DESCRIPTION,
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.console = ctx
    app.include_router(api_router)
    app.include_router(web.router)
    app.include_router(status_page.router)
    app.include_router(proactivity_page.router)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")

    @app.middleware("http")
    async def page_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                           ) -> Response:
        response = await call_next(request)
        if web.wants_html(request):
            # the console's pages run only their own scripts and are never framed
            response.headers["Content-Security-Policy"] = _PAGE_CSP
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["Referrer-Policy"] = "same-origin"
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    # outermost: sizes and tokens are checked before anything reads a body (issue 18.2)
    app.add_middleware(RequestGuard, ctx=ctx)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        # browsers ask for it on every site; the pages also link the SVG one
        return Response((_HERE / "static" / "favicon.ico").read_bytes(),
                        media_type="image/vnd.microsoft.icon",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(ctx.metrics.exposition(),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.exception_handler(StoreError)
    async def store_down(request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": f"the telemetry store is unavailable: {exc}"}, 503)

    @app.exception_handler(SQLAlchemyError)
    async def db_down(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        return JSONResponse({"detail": "the case database is unavailable"}, 503)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if web.wants_html(request):
            return web.error_page(request, exc.status_code, str(exc.detail))
        return JSONResponse({"detail": exc.detail}, exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""),
                   "type": e.get("type", "")} for e in exc.errors()]
        if web.wants_html(request):
            return web.error_page(request, 422, "; ".join(e["msg"] for e in errors))
        return JSONResponse({"detail": errors}, 422)

    return app
