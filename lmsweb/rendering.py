"""One URL, two renderings: the full page, or its partial for htmx."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Response, make_response, redirect, render_template, request

from .extensions import htmx  # noqa: F401  (request.htmx is installed by the extension)


def wants_partial() -> bool:
    """An htmx request that is neither boosted nor a history restore wants a fragment."""
    hx = getattr(request, "htmx", None)
    return bool(hx) and not hx.boosted and not hx.history_restore_request


def render(page: str, partial: str | None = None, status: int = 200, **context: Any) -> Response:
    """Render `page`, or `partial` to an htmx request; always `Vary: HX-Request`."""
    template = partial if partial and wants_partial() else page
    response = make_response(render_template(template, **context), status)
    response.headers.add("Vary", "HX-Request")
    return response


def toast(
    response: Response,
    message: str,
    level: str = "success",
    undo: dict[str, Any] | None = None,
    **events: Any,
) -> Response:
    """Attach a toast (and any other client events) as an `HX-Trigger` header; `undo`
    (from lmsweb.undo.offer) gives the toast its Undo button."""
    payload: dict[str, Any] = {}
    existing = response.headers.get("HX-Trigger")
    if existing:
        payload.update(json.loads(existing))
    payload["showToast"] = {"message": message, "level": level}
    if undo:
        payload["showToast"]["undo"] = undo
    payload.update(events)
    response.headers["HX-Trigger"] = json.dumps(payload)
    return response


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def see_other(location: str) -> Response:
    """After a POST: 303 to a plain request, `HX-Redirect` to htmx (never a 302 it would swap)."""
    # A header cannot hold CR/LF: a `next` carrying them made the answer a 500 after the
    # change was saved. Percent-encoded, they stay part of the (same-site) path.
    location = _CONTROL.sub(lambda m: f"%{ord(m.group()):02X}", location)
    if request.htmx:
        response = make_response("", 204)
        response.headers["HX-Redirect"] = location
        return response
    return redirect(location, code=303)
