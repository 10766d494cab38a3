"""Hostile ids, pages, encodings and NULs on every route of app.url_map: never a 500.

The route list comes from the app itself, so a new route is fuzzed without anyone
remembering to add it. Requests go as an administrator and as a learner, GET and POST
(with a valid CSRF token), on SQLite and on PostgreSQL (TEST_DATABASE_URL)."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from lmsweb.models import User
from tests.conftest import count

# Values for a path argument, as they would appear in the URL (already percent-encoded).
PATH_VALUES = (
    "99999999999999999999",
    str(2**31),
    str(2**63),
    "0",
    "-1",
    "%C2%B2",  # "²": str.isdigit() says yes, int() says no
    "%D9%A3",  # Arabic-Indic three: a Unicode decimal digit
    "%00",
    "1%00",
    "%0D%0A",
    "%FF%FE",
    "1.5",
    "x" * 300,
)
# Values for query and form parameters (raw; the client encodes them).
PARAM_VALUES = (
    "99999999999999999999",
    str(2**31),
    "-1",
    "0",
    "²",
    "٣",
    "\x00",
    "a\x00b",
    "\r\nX-Injected: 1",
    "\ud800",
    "\ufffe",
    "%",
    "' OR 1=1 --",
    "x" * 5000,
    "2026-02-30",
)
PARAMS = (
    "page",
    "per_page",
    "ids",
    "user_ids",
    "id",
    "actor",
    "target",
    "action",
    "q",
    "location",
    "group",
    "course",
    "status",
    "role",
    "sort",
    "state",
    "archived",
    "date_from",
    "date_to",
    "due_date",
    "next",
    "mode",
    "assignment",
    "select_all",
    "add",
    "seats",
    "email",
)
# Each also sent alone, as the only query parameter of a GET.
SINGLE_VALUES = ("99999999999999999999", "²", "\x00")
# Posting these would end the fuzzing client's own session.
SKIP_POST = {"auth.logout"}
PLACEHOLDER = re.compile(r"<[^>]+>")


def _rules(app: Flask):
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            yield rule


def _path(rule, value: str) -> str:
    return PLACEHOLDER.sub(value, rule.rule)


def _open(client, method: str, url: str, **kwargs):
    try:
        response = client.open(url, method=method, **kwargs)
    except UnicodeEncodeError:
        # A lone surrogate cannot be sent by any client: nothing reaches the app.
        return None
    # Read to the end and closed: a streamed export holds its request context until then.
    response.get_data()
    response.close()
    return response


def _fuzz(app, client, methods=("GET", "POST")) -> list[str]:
    problems = []
    for rule in _rules(app):
        for method in methods:
            if method not in (rule.methods or ()) or (
                method == "POST" and rule.endpoint in SKIP_POST
            ):
                continue
            urls = [_path(rule, v) for v in PATH_VALUES] if rule.arguments else []
            base = _path(rule, "1")
            for value in PARAM_VALUES:
                params = dict.fromkeys(PARAMS, value)
                if method == "GET":
                    responses = [(url, _open(client, method, url)) for url in urls]
                    responses.append((base, _open(client, method, base, query_string=params)))
                    # One parameter at a time too: with all of them bad, a form's first
                    # error can answer 422 before a later parameter is ever used.
                    if value in SINGLE_VALUES:
                        responses += [
                            (f"{base}?{p}=", _open(client, method, base, query_string={p: value}))
                            for p in PARAMS
                        ]
                else:
                    responses = [(url, _open(client, method, url, data={})) for url in urls]
                    responses.append((base, _open(client, method, base, data=params)))
                    responses.append(
                        (f"{base} (htmx)", _open(client, method, base, data=params, headers=HX))
                    )
                urls = []  # the path values once per rule
                for url, response in responses:
                    if response is not None and response.status_code >= 500:
                        problems.append(f"{method} {url} {value!r} -> {response.status_code}")
    return problems


HX = {"HX-Request": "true"}


@pytest.fixture
def records(make, admin, learner):
    """Something for the ids to find: a course, an assignment, a group and a location."""
    course = make.course()
    make.assignment(learner, course)
    make.group()
    make.location()


def test_no_hostile_value_gives_a_500_to_an_administrator(app, admin_client, records):
    problems = _fuzz(app, admin_client)
    assert problems == [], "\n".join(problems[:40])


def test_no_hostile_value_gives_a_500_to_a_learner(app, learner_client, records):
    problems = _fuzz(app, learner_client)
    assert problems == [], "\n".join(problems[:40])


@pytest.mark.parametrize(
    "url",
    [
        "/admin/audit?page=99999999999999999999",
        "/admin/audit?page=%C2%B2",
        "/admin/audit?actor=%00",
        "/admin/users/99999999999999999999",
        "/admin/users/2147483648",
        "/admin/users/export.xlsx?user_ids=%C2%B2",
    ],
)
def test_the_reported_urls_answer_4xx_or_a_page(admin_client, url):
    response = admin_client.get(url)
    assert response.status_code in (200, 400, 404), response.status_code


def test_the_reported_learner_url_is_404(learner_client):
    response = learner_client.post("/my/training/99999999999999999999/start")
    assert response.status_code == 404


def test_an_id_past_the_integer_range_is_404_and_the_largest_id_is_looked_up(admin_client):
    assert admin_client.get("/admin/users/2147483648").status_code == 404
    # 2**31 - 1 is a valid id that does not exist: looked up, not refused by the route.
    assert admin_client.get("/admin/users/2147483647").status_code == 404
    assert admin_client.get("/admin/users/1").status_code == 200


def test_a_nul_is_refused_with_400_before_anything_changes(app, admin_client, make):
    pending = make.user(status="pending")
    response = admin_client.post(
        f"/admin/users/{pending.id}/approve", data={"next": "/admin/users\x00"}
    )
    assert response.status_code == 400
    assert "NUL" in response.text
    assert count(app, User, User.status == "pending") == 1


def test_too_many_ids_in_an_export_is_400(admin_client):
    ids = "&".join(f"user_ids={n}" for n in range(1, 10_002))
    response = admin_client.get(f"/admin/users/export.xlsx?{ids}")
    assert response.status_code == 400 and "At most 10,000 ids" in response.text


def test_a_huge_user_id_in_bulk_is_a_form_error(app, admin_client, make):
    pending = make.user(status="pending")
    response = admin_client.post(
        "/admin/users/bulk",
        data={"action": "approve", "user_ids": [str(pending.id), "99999999999999999999"]},
    )
    assert response.status_code == 422
    assert count(app, User, User.status == "pending") == 1


@pytest.mark.parametrize("headers", [{}, HX])
def test_next_with_cr_lf_after_an_approve_redirects_and_keeps_the_change(
    app, admin_client, make, headers
):
    pending = make.user(status="pending")
    response = admin_client.post(
        f"/admin/users/{pending.id}/approve",
        data={"next": "/admin/users?page=2\r\nSet-Cookie: x=1"},
        headers=headers,
    )
    assert response.status_code in (204, 303, 200), response.text
    location = response.headers.get("Location") or response.headers.get("HX-Redirect") or ""
    assert "\r" not in location and "\n" not in location
    assert count(app, User, User.status == "pending") == 0
