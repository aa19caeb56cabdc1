"""Server-rendered pages: one Jinja2 environment with autoescaping on for every template."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import HTMLResponse

from junto import __version__

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.globals["junto_version"] = __version__


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page. `viewer` and `csrf_token` come from the security middleware."""
    context.setdefault("viewer", getattr(request.state, "user", None))
    context.setdefault("csrf_token", getattr(request.state, "csrf_token", ""))
    return templates.TemplateResponse(request, name, context, status_code=status_code)


async def render_in_thread(
    request: Request, name: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """render() in a worker thread, for pages that grow with the conversation: the page of a
    one-hour talk (~12,000 transcript words) is ~0.25 s of Jinja, during which the event loop
    would deliver nothing else (no room events, no media signalling). Jinja renders thread-
    safely; the context must already be loaded (no lazy database access), as on the loop."""
    return await asyncio.to_thread(render, request, name, status_code, **context)
