"""The pages every accessibility and validity check walks, built from the app's routes.

`page_list(app, seeds)` turns every GET rule of `app.url_map` into concrete URLs, so a new
page is checked without anyone remembering to add it. A rule with URL arguments needs a
sample in SAMPLES (keyed by endpoint); one without fails the checks, naming the endpoint.
Endpoints that answer something other than an HTML page are listed in NON_HTML."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from werkzeug.routing import Rule

from lmsweb.security import is_admin_rule, is_public_endpoint

REQUIRED = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parents[1]

# Endpoints whose GET is not an HTML page (downloads, JSON, redirects). A rule whose path
# ends in one of DOWNLOAD_SUFFIXES is a download too.
NON_HTML = {
    "static": "static files",
    "auth.healthz": "JSON for load balancers",
    "auth.home": "redirects to the start page of whoever is signed in",
    "oidc.start": "redirects to the organisation's OpenID Connect provider",
    "oidc.callback": "the provider's redirect back, signing in or refusing",
}
DOWNLOAD_SUFFIXES = (".xlsx", ".csv", ".json", ".txt", ".pdf", ".zip")
# The SCIM API answers JSON to directories, not pages to people.
NON_HTML_PREFIXES = ("/scim/",)


@dataclass
class Seeds:
    """Ids of representative rows, and links, that sample URL arguments come from."""

    admin_email: str
    learner_email: str
    user_id: int  # an active learner with groups and training records
    pending_user_id: int
    archived_user_id: int
    course_id: int
    group_id: int
    location_id: int
    assignment_id: int  # the learner's own, not started
    import_job_id: int  # a previewed import with rows of every kind
    tokens: dict[str, str] = field(default_factory=dict)
    admin_user_id: int = 0  # a scoped administrator: their page carries the scope form


# endpoint -> a function of the seeds giving the URL arguments, or a list of
# (label, arguments, expected status) variants. Endpoints of pages still being built are
# here with the argument names DESIGN.md implies; a mismatch fails naming the endpoint.
Sample = Callable[[Seeds], dict] | Callable[[Seeds], list[tuple[str, dict, int]]]
SAMPLES: dict[str, Sample] = {
    "auth.activate": lambda s: [
        ("valid link", {"token": s.tokens["activate"]}, 200),
        ("expired link", {"token": s.tokens["activate_expired"]}, 410),
    ],
    "auth.reset_password": lambda s: [
        ("valid link", {"token": s.tokens["reset"]}, 200),
        ("forged link", {"token": "not-a-valid-token"}, 410),
    ],
    "users.detail": lambda s: [
        ("", {"user_id": s.user_id}, 200),
        ("an administrator, with the scope form", {"user_id": s.admin_user_id}, 200),
    ],
    "users.edit": lambda s: {"user_id": s.user_id},
    "users.edit_courses": lambda s: {"user_id": s.user_id},
    "users.edit_groups": lambda s: {"user_id": s.user_id},
    "users.confirm_archive": lambda s: {"user_id": s.user_id},
    "users.row_menu": lambda s: [
        ("active", {"user_id": s.user_id}, 200),
        ("pending", {"user_id": s.pending_user_id}, 200),
    ],
    "users.invite_status": lambda s: {"user_id": s.pending_user_id},
    "users.restore": lambda s: {"user_id": s.archived_user_id},
    "users.approve": lambda s: {"user_id": s.pending_user_id},
    "users.notify": lambda s: {"user_id": s.pending_user_id},
    "courses.detail": lambda s: {"course_id": s.course_id},
    "courses.edit_course": lambda s: {"course_id": s.course_id},
    "courses.seats": lambda s: {"course_id": s.course_id},
    "users.import_job": lambda s: {"job_id": s.import_job_id},
    "org.group": lambda s: {"group_id": s.group_id},
    "org.location": lambda s: {"location_id": s.location_id},
}


@dataclass(frozen=True)
class PageCheck:
    """One URL to check, as whom, and the status it should answer."""

    endpoint: str
    url: str
    audience: str  # "anonymous", "learner" or "admin"
    label: str = ""
    status: int = 200

    def __str__(self) -> str:
        extra = f" ({self.label})" if self.label else ""
        return f"{self.endpoint}{extra} {self.url} as {self.audience}"


def is_html_page(rule: Rule) -> bool:
    return (
        "GET" in (rule.methods or set())
        and rule.endpoint not in NON_HTML
        and not rule.rule.endswith(DOWNLOAD_SUFFIXES)
        and not rule.rule.startswith(NON_HTML_PREFIXES)
    )


def audience(app: Flask, rule: Rule) -> str:
    if is_admin_rule(rule.rule):
        return "admin"
    if is_public_endpoint(app, rule.endpoint):
        return "anonymous"
    return "learner"


def page_list(app: Flask, seeds: Seeds, extra: Iterable[PageCheck] = ()) -> list[PageCheck]:
    """Every HTML GET page of the app, with sample arguments; fails naming what is missing."""
    pages, missing = [], []
    with app.test_request_context():
        adapter = app.url_map.bind("localhost", script_name=app.config.get("APPLICATION_ROOT"))
        for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
            if not is_html_page(rule):
                continue
            who = audience(app, rule)
            if not rule.arguments:
                pages.append(PageCheck(rule.endpoint, adapter.build(rule.endpoint), who))
                continue
            sample = SAMPLES.get(rule.endpoint)
            variants = sample(seeds) if sample else None
            if isinstance(variants, dict):
                variants = [("", variants, 200)]
            if not variants or any(set(rule.arguments) - set(v[1]) for v in variants):
                missing.append(f"{rule.endpoint} ({rule.rule})")
                continue
            for label, values, status in variants:
                url = adapter.build(rule.endpoint, {k: values[k] for k in rule.arguments})
                pages.append(PageCheck(rule.endpoint, url, who, label, status))
    if missing:
        pytest.fail(
            "GET pages without sample URL arguments (add them to SAMPLES in "
            "tests/a11y_support.py, or to NON_HTML if they are not HTML pages):\n  "
            + "\n  ".join(missing),
            pytrace=False,
        )
    return [*pages, *extra]


# The error page: a URL no rule matches, and an admin page a learner may not see.
ERROR_PAGES = (
    PageCheck("error", "/admin/no-such-page", "admin", "404 page", 404),
    PageCheck("error", "/admin/users", "learner", "403 page", 403),
)


def seed_pages(app: Flask, make, users: int = 300) -> Seeds:
    """A representative organisation: the demo seed plus known rows the samples point at."""
    from lmsweb import sqlite_write_transaction
    from lmsweb.extensions import db
    from lmsweb.models import User
    from lmsweb.seed import seed_demo
    from lmsweb.tokens import make_token

    with app.app_context(), sqlite_write_transaction():
        seed_demo(users)
        db.session.commit()
    admin = make.admin(first_name="Ada", last_name="Admin", email="ada.admin@example.com")
    location, group = make.location("Aardvark House"), make.group("Accessibility Champions")
    course = make.course(code="A11Y-1", title="Accessible Documents", seats=5)
    learner = make.learner(
        first_name="Lee",
        last_name="Aaronson",
        email="lee.learner@example.com",
        groups=[group],
        location_id=location.id,
    )
    assignment = make.assignment(learner, course)
    make.assignment(learner, make.course(seats=2), state="in_progress")
    pending = make.user(
        first_name="Pat",
        last_name="Aardman",
        email="pat.pending@example.com",
        status="pending",
        location_id=location.id,
    )
    archived = make.user(first_name="Ari", last_name="Archer", status="archived")
    site_admin = make.admin(first_name="Sid", last_name="Aardsite", email="sid.site@example.com")
    with app.app_context():
        # The course page's "Location allocations" table, with a row (#17).
        from lmsweb.models import LocationAllocation

        db.session.add(LocationAllocation(course_id=course.id, location_id=location.id, seats=3))
        db.session.commit()
        import_job = previewed_import(admin.id, learner.email)
        user = db.session.get(User, pending.id)
        reset_for = db.session.get(User, learner.id)
        from lmsweb.models import Group, Location
        from lmsweb.scope import set_scope

        set_scope(
            db.session.get(User, site_admin.id),
            [db.session.get(Location, location.id)],
            [db.session.get(Group, group.id)],
        )
        db.session.commit()
        tokens = {
            "activate": make_token(user, "activate"),
            "reset": make_token(reset_for, "reset"),
            "activate_expired": expired_token(app, user, "activate"),
        }
    return Seeds(
        admin_email=admin.email,
        learner_email=learner.email,
        user_id=learner.id,
        pending_user_id=pending.id,
        archived_user_id=archived.id,
        course_id=course.id,
        group_id=group.id,
        location_id=location.id,
        assignment_id=assignment.id,
        import_job_id=import_job,
        tokens=tokens,
        admin_user_id=site_admin.id,
    )


def previewed_import(admin_id: int, existing_email: str) -> int:
    """An import previewed as the import page does: a create, an update and an error row."""
    from lmsweb import roster_import
    from lmsweb.extensions import db

    csv = (
        "First name,Last name,Email,Location\n"
        "Nia,Newcomer,nia.newcomer@example.com,Lisbon\n"
        f"Lee,Aaronson-Smith,{existing_email},\n"
        "No,Email,,Nowhere\n"
    ).encode()
    table = roster_import.read_table("people.csv", csv, 100)
    job = roster_import.new_job(table, "people.csv", admin_id)
    roster_import.preview_job(job)
    db.session.commit()
    return job.id


def expired_token(app: Flask, user, purpose: str) -> str:
    """A correctly signed link issued long enough ago to have expired."""
    from lmsweb.tokens import make_token

    valid = make_token(user, purpose)
    max_age = app.config["ACTIVATION_MAX_AGE_DAYS"] * 86400

    class IssuedLongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - max_age - 3600

    serializer = URLSafeTimedSerializer(
        app.config["SECRET_KEY"], salt=f"lmsweb-{purpose}", signer=IssuedLongAgo
    )
    return serializer.dumps(serializer.loads(valid))


# --- The Nu HTML Checker -------------------------------------------------------------------

VNU_VERSION = "26.9.27"
VNU_DIR = ROOT / "tools" / "vnu"
VNU_JAR = VNU_DIR / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"


def need(condition: bool, reason: str) -> None:
    """Skip locally with a reason; in CI (CI=true) the check is mandatory."""
    if condition:
        return
    if REQUIRED:
        pytest.fail(f"{reason}: this check is mandatory in CI", pytrace=False)
    pytest.skip(reason)


def ensure_vnu() -> Path:
    """The vnu.jar of the pinned vnu-jar npm package, installed into tools/vnu on first use
    (and again when VNU_VERSION changes)."""
    manifest = VNU_JAR.parents[2] / "package.json"
    installed = json.loads(manifest.read_text()).get("version") if manifest.exists() else None
    if not VNU_JAR.exists() or installed != VNU_VERSION:
        npm = shutil.which("npm")
        if npm is None:
            raise FileNotFoundError("npm is needed to install vnu-jar")
        subprocess.run(
            [
                npm,
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--prefix",
                str(VNU_DIR),
                f"vnu-jar@{VNU_VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return VNU_JAR


def run_vnu(paths: list[Path]) -> list[dict]:
    """Run the Nu HTML Checker once over `paths`; its error messages."""
    java = shutil.which("java")
    assert java, "java is needed to run vnu.jar"
    result = subprocess.run(
        [java, "-jar", str(ensure_vnu()), "--errors-only", "--format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    # vnu writes its JSON report to stderr; exit status 1 means it found errors.
    report = json.loads(result.stderr or result.stdout or '{"messages": []}')
    errors = ("error", "non-document-error")
    return [m for m in report.get("messages", []) if m.get("type") in errors]


def format_vnu(messages: list[dict], names: dict[str, str]) -> str:
    lines = []
    for m in messages:
        where = names.get(re.sub(r"^file:", "", m.get("url", "")), m.get("url", ""))
        lines.append(
            f"{where}:{m.get('lastLine', '?')}: {m.get('message')}\n"
            f"    {m.get('extract', '').strip()}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    # `python -m tests.a11y_support`: install the Nu HTML Checker (the Makefile's `vnu`).
    print(ensure_vnu())
