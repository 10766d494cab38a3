"""Where a request goes back to, and how it says no.

`next` values are app-relative paths (as `request.full_path` gives them, without the
URL prefix): they travel through forms and links unchanged, and the prefix is added only
when the app redirects to one (`go_back`) or prints one as a link (`app_url`). Carrying
the prefix in `next` itself doubled it after the second round trip.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, flash, make_response, request, url_for

from .rendering import see_other


def safe_next(target: str | None, default: str | None = None) -> str | None:
    """`target` if it is a path inside this app, else `default`: never another host, a
    scheme (`javascript:`), a protocol-relative `//` or `/\\`, nor a header-splitting
    CR/LF or any other control character."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ord(ch) < 32 or ch in "\\\x7f" for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def app_url(path: str) -> str:
    """An app-relative path as the browser needs it (with the URL prefix, if any)."""
    return request.script_root + path


def app_path(url: str) -> str:
    """The app-relative path of a URL this app built (`url_for`) or the browser shows."""
    root = request.script_root
    if root and (url == root or url.startswith(root + "/")):
        return url[len(root) :] or "/"
    return url


def go_back(path: str) -> Response:
    """After a POST: back to an app-relative path (303, or `HX-Redirect` to htmx)."""
    return see_other(app_url(path))


def _browser_path(url: str | None) -> str | None:
    """The app-relative path and query of a same-host URL the browser sent
    (`HX-Current-URL`, `Referer`)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.netloc != request.host:
        return None
    return app_path(parts.path) + (f"?{parts.query}" if parts.query else "")


def back_to_list(*candidates: str | None) -> str:
    """The Users list, with its filters, to return to: the first of `candidates` (then the
    request's `next`, then the page htmx or the browser came from) that is that list."""
    index = app_path(url_for("users.index"))
    sources = (
        *candidates,
        request.values.get("next"),
        _browser_path(request.headers.get("HX-Current-URL")),
        _browser_path(request.referrer),
    )
    for candidate in sources:
        target = safe_next(candidate)
        if target and urlsplit(target).path == index:
            return target
    return index


def refuse(message: str, status: int = 409, back: str | None = None) -> Response:
    """Say no. To htmx: the message as plain text (app.js shows it as an error toast);
    otherwise a flash and a redirect to `back` (app-relative; default: the Users list)."""
    if request.htmx:
        response = make_response(message, status)
        response.mimetype = "text/plain"
        return response
    flash(message, "error")
    return go_back(back or back_to_list())
