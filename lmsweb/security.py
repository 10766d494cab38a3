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


# How each /admin endpoint treats a scoped administrator (#17): "scoped" views narrow what
# they read and change to the administrator's people (through lmsweb/scope.py); "org_wide"
# ones are refused (403). Whole areas are declared here; scoped views carry @scoped. An
# /admin endpoint declared neither way is refused too, and tests/test_scopes.py fails.
SCOPED, ORG_WIDE = "scoped", "org_wide"
ORG_WIDE_BLUEPRINTS = {"courses", "org", "rules", "settings"}


def scoped(view: F) -> F:
    """The view narrows to the scoped administrator's people (scope.user_condition,
    get_user_or_404): a scoped administrator may use it."""
    view.admin_scope = SCOPED  # type: ignore[attr-defined]
    return view


def org_wide(view: F) -> F:
    """Only an organisation-wide administrator may use the view."""
    view.admin_scope = ORG_WIDE  # type: ignore[attr-defined]
    return view


def scope_declaration(app: Flask, endpoint: str | None) -> str | None:
    """ "scoped", "org_wide", or None (undeclared) for an endpoint."""
    view = app.view_functions.get(endpoint) if endpoint else None
    declared = getattr(view, "admin_scope", None)
    if declared is None and endpoint and endpoint.split(".", 1)[0] in ORG_WIDE_BLUEPRINTS:
        return ORG_WIDE
    return declared


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
    `/admin/...` needs an administrator, and a scoped one only reaches @scoped views."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    check = bearer_check(app, request.endpoint)
    if check is not None:
        return check()
    if is_public_endpoint(app, request.endpoint):
        return None
    if not current_user.is_authenticated:
        return _unauthenticated()
    rule = request.url_rule
    if rule is not None and is_admin_rule(rule.rule):
        if not current_user.is_admin:
            abort(403)
        if current_user.scope_id is not None and scope_declaration(app, request.endpoint) != SCOPED:
            abort(403, "Only an organisation-wide administrator can do this.")
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


def _scope_label() -> str | None:
    """ "Lisbon, Porto": the signed-in administrator's scope, for the top bar; None when
    organisation-wide."""
    from .scope import current_rule

    rule = current_rule()
    return rule.label if rule is not None else None


def init_app(app: Flask) -> None:
    app.before_request(enforce_access)
    app.after_request(add_security_headers)
    app.jinja_env.globals.update(
        scope_label=_scope_label,
        nav_in_scope=lambda endpoint: scope_declaration(app, endpoint) == SCOPED,
    )
