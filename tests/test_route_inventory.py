"""Every route is denied by default: the inventory walks app.url_map, so a new route is
checked without anyone remembering to add a test."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import Rule

from lmsweb.security import bearer_check, is_admin_rule, is_public_endpoint
from tests.conftest import csrf_from, login

# The only endpoints anyone may reach without signing in. Adding one is a security decision:
# this list must change with it, in review.
EXPECTED_PUBLIC = {
    "static",
    "auth.login",
    "auth.activate",
    "auth.reset_password",
    "auth.forgot_password",
    "auth.healthz",
    "oidc.start",
    "oidc.callback",
}
# Endpoints authenticated by a bearer token instead of the session (so without the session's
# CSRF token): the SCIM API. A signed-in administrator's cookie must not open them.
BEARER_PREFIX = "scim."


def _url(app: Flask, rule: Rule) -> str:
    values = {}
    for name in rule.arguments:
        converter = rule._converters[name]
        values[name] = 1 if "Integer" in type(converter).__name__ else "x"
    with app.test_request_context():
        return app.url_map.bind("localhost").build(rule.endpoint, values)


def _routes(app: Flask):
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule, method


def protection_problems(app: Flask, anonymous, learner, admin) -> list[str]:
    """What is wrong with the app's routes; empty when every route is protected."""
    problems = []
    for rule, method in _routes(app):
        if rule.endpoint == "static":
            continue
        url = _url(app, rule)
        if bearer_check(app, rule.endpoint) is not None or rule.endpoint.startswith(BEARER_PREFIX):
            problems.extend(_bearer_problems(app, rule, method, url, anonymous, admin))
            continue
        public = is_public_endpoint(app, rule.endpoint)
        if public and rule.endpoint not in EXPECTED_PUBLIC:
            problems.append(f"{rule.endpoint} is public but not in EXPECTED_PUBLIC")
        if not public:
            response = anonymous.open(url, method=method)
            if response.status_code not in (303, 401) or (
                response.status_code == 303 and "/login" not in response.headers["Location"]
            ):
                problems.append(f"anonymous {method} {url} -> {response.status_code}")
            hx = anonymous.open(url, method=method, headers={"HX-Request": "true"})
            if hx.status_code != 401 or "/login" not in hx.headers.get("HX-Redirect", ""):
                problems.append(
                    f"anonymous htmx {method} {url} -> {hx.status_code} without HX-Redirect"
                )
        if is_admin_rule(rule.rule):
            response = learner.open(url, method=method)
            if response.status_code != 403:
                problems.append(f"learner {method} {url} -> {response.status_code}")
        if method == "POST":
            # No CSRF token: refused before the view runs, for admins and anonymous alike.
            saved, admin.csrf_token = admin.csrf_token, None
            response = admin.open(url, method="POST", data={})
            admin.csrf_token = saved
            if response.status_code != 400 or "security token" not in response.text:
                problems.append(f"POST {url} without CSRF token -> {response.status_code}")
    return problems


def _bearer_problems(app, rule, method, url, anonymous, admin) -> list[str]:
    if not rule.endpoint.startswith(BEARER_PREFIX) or bearer_check(app, rule.endpoint) is None:
        return [f"{rule.endpoint} takes a bearer token but is not a {BEARER_PREFIX} endpoint"]
    problems = []
    for who, client in (("anonymous", anonymous), ("admin session", admin)):
        response = client.open(url, method=method)
        if response.status_code != 401 or "Bearer" not in response.headers.get(
            "WWW-Authenticate", ""
        ):
            problems.append(f"{who} {method} {url} without a token -> {response.status_code}")
    forged = anonymous.open(url, method=method, headers={"Authorization": "Bearer lms_scim_x"})
    if forged.status_code != 401:
        problems.append(f"{method} {url} with a forged token -> {forged.status_code}")
    return problems


def _clients(app, make):
    learner = make.learner(email="inv.learner@example.com")
    admin = make.admin(email="inv.admin@example.com")
    learner_client, admin_client = app.test_client(), app.test_client()
    login(learner_client, learner.email)
    login(admin_client, admin.email)
    anonymous = app.test_client()
    # A valid CSRF token, so that the access check itself is what refuses the POST.
    anonymous.csrf_token = csrf_from(anonymous.get("/login").text)
    return anonymous, learner_client, admin_client


def test_every_route_is_protected(app, make):
    anonymous, learner, admin = _clients(app, make)
    assert protection_problems(app, anonymous, learner, admin) == []


def test_public_list_matches_the_app(app):
    public = {
        rule.endpoint for rule in app.url_map.iter_rules() if is_public_endpoint(app, rule.endpoint)
    }
    assert public == EXPECTED_PUBLIC


def test_inventory_catches_an_unprotected_admin_route(app, make):
    """The design of the check: a route that skips protection is reported."""
    from lmsweb.security import public

    @public
    def leaky():
        return "all the users"

    @public
    def leaky_post():
        return "done"

    app.add_url_rule("/admin/leak", "leak", leaky)
    app.add_url_rule("/admin/leak-post", "leak_post", leaky_post, methods=["POST"])
    anonymous, learner, admin = _clients(app, make)
    problems = protection_problems(app, anonymous, learner, admin)
    assert "leak is public but not in EXPECTED_PUBLIC" in problems
    assert "learner GET /admin/leak -> 200" in problems
    assert "leak_post is public but not in EXPECTED_PUBLIC" in problems


def test_a_new_admin_route_is_protected_without_decorators(app, make):
    app.add_url_rule("/admin/new-page", "new_page", lambda: "secret")
    anonymous, learner, admin = _clients(app, make)
    assert anonymous.get("/admin/new-page").status_code == 303
    assert learner.get("/admin/new-page").status_code == 403
    assert admin.get("/admin/new-page").text == "secret"


def test_location_allocation_routes_are_admin_posts(app):
    """The course page's allocation forms (#17): POST only, under /admin, so the inventory
    above checks them (sign-in, learner 403, CSRF) like every admin route."""
    rules = {r.endpoint: r for r in app.url_map.iter_rules() if "allocation" in r.endpoint}
    assert set(rules) == {
        "courses.add_allocation",
        "courses.change_allocation",
        "courses.remove_allocation",
    }
    for rule in rules.values():
        assert rule.rule.startswith("/admin/courses/<id:course_id>/allocations")
        assert set(rule.methods) - {"OPTIONS"} == {"POST"}
        assert is_admin_rule(rule.rule)
