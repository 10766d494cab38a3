"""Deny by default, security headers, and who may see what."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Flask, abort, current_app, make_response, request, url_for
from flask_login import current_user

F = TypeVar("F", bound=Callable)

# Endpoints reachable without signing in, besides views marked with @public.
PUBLIC_ENDPOINTS = {"static"}


def public(view: F) -> F:
    """Mark a view as reachable without signing in (sign-in, activation, health)."""
    view.is_public = True  # type: ignore[attr-defined]
    return view


def bearer(check: Callable):
    """Authenticate a view by `check()` (a bearer token) instead of the session: `check`
    returns None to let the request in, or the response that refuses it. Such views take
    no cookies, so they are exempt from the session's CSRF token."""

    def mark(view: F) -> F:
        view.bearer_check = check  # type: ignore[attr-defined]
        return view

    return mark


def bearer_check(app: Flask, endpoint: str | None) -> Callable | None:
    view = app.view_functions.get(endpoint) if endpoint else None
    return getattr(view, "bearer_check", None)


def is_public_endpoint(app: Flask, endpoint: str | None) -> bool:
    if endpoint is None:
        return True  # no route matched: Flask answers 404/405 itself
    if endpoint in PUBLIC_ENDPOINTS:
        return True
    view = app.view_functions.get(endpoint)
    return bool(getattr(view, "is_public", False))


def is_admin_rule(rule: str) -> bool:
    prefix = "/admin"
    return rule == prefix or rule.startswith(prefix + "/")


def _unauthenticated():
    login = url_for("auth.login", next=request.full_path.rstrip("?"))
    if request.htmx:
        response = make_response("Your session has ended. Please sign in again.", 401)
        response.headers["HX-Redirect"] = url_for("auth.login")
        return response
    if request.method != "GET":
        return make_response("Please sign in.", 401)
    return make_response("", 303, {"Location": login})


def enforce_access():
    """before_request: every endpoint needs a signed-in user unless it is public;
    `/admin/...` needs an administrator."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    check = bearer_check(app, request.endpoint)
    if check is not None:
        return check()
    if is_public_endpoint(app, request.endpoint):
        return None
    if not current_user.is_authenticated:
        return _unauthenticated()
    rule = request.url_rule
    if rule is not None and is_admin_rule(rule.rule) and not current_user.is_admin:
        abort(403)
    return None


def content_security_policy(app: Flask) -> str:
    ancestors = " ".join(["'self'", *app.config.get("FRAME_ANCESTORS", [])])
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            f"frame-ancestors {ancestors}",
        ]
    )


def add_security_headers(response):
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    headers = response.headers
    headers.setdefault("Content-Security-Policy", content_security_policy(app))
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin-allow-popups")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if request.endpoint != "static":
        headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.before_request(enforce_access)
    app.after_request(add_security_headers)
