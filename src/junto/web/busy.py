"""503 "busy" when the database has no connection to spare (issue 12).

Every pooled connection in use for longer than `Settings.db_wait_seconds` means the node is
overloaded: it answers `503 {"error": "busy", "message": ...}` with `Retry-After`, so clients
back off and retry, instead of waiting out a long pool timeout and getting a 500.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from junto.storage.engine import BUSY_RETRY_AFTER_S, PoolTimeout

log = logging.getLogger("junto.web.busy")

BUSY_MESSAGE = "the node is busy; try again in a moment"


def busy_response() -> JSONResponse:
    return JSONResponse(
        {"error": "busy", "message": BUSY_MESSAGE},
        status_code=503,
        headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
    )


class BusyGuard:
    """Turns a pool timeout anywhere below it into the 503, as long as nothing was sent yet.

    A middleware rather than an exception handler: the security middleware's session lookup
    also waits for a connection, and it runs outside the app's exception handlers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except PoolTimeout:
            if started:
                raise
            log.warning("no database connection for %s %s: 503", scope["method"], scope["path"])
            await busy_response()(scope, receive, send)
