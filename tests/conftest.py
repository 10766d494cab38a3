"""Fixtures: a fresh database per test (cloned from one migrated template), app, clients,
factories. SQLite by default; PostgreSQL when TEST_DATABASE_URL is set."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
import uuid
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

# Before the app is imported: never touch the developer's instance/ or environment.
_INSTANCE = tempfile.mkdtemp(prefix="lmsweb-test-instance-")
os.environ["LMSWEB_INSTANCE"] = _INSTANCE
for _name in ("DATABASE_URL", "MAIL_SERVER", "PUBLIC_BASE_URL", "FRAME_ANCESTORS", "URL_PREFIX"):
    os.environ.pop(_name, None)

from lmsweb import create_app  # noqa: E402
from lmsweb.config import normalise_database_url  # noqa: E402
from lmsweb.extensions import db  # noqa: E402
from lmsweb.models import (  # noqa: E402
    Course,
    CourseAssignment,
    Group,
    Location,
    User,
    utcnow,
)

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
IS_POSTGRES = TEST_DATABASE_URL.startswith(("postgres://", "postgresql"))
HX = {"HX-Request": "true"}
PASSWORD = "correct horse battery"

BASE_CONFIG = {
    "TESTING": True,
    "SECRET_KEY": "test-secret-key-not-for-production",
    "MAIL_SERVER": None,
    "PUBLIC_BASE_URL": "http://lms.test",
    "ORG_NAME": "Test Org",
    "SERVER_NAME": None,
}


def _admin_url(url: str, dbname: str) -> sa.URL:
    return sa.make_url(normalise_database_url(url)).set(database=dbname)


def _migrate(url: str) -> None:
    from flask_migrate import upgrade

    app = create_app({**BASE_CONFIG, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def template_database(tmp_path_factory):
    """Migrate once per test session; each test gets a copy."""
    if IS_POSTGRES:
        base = sa.make_url(normalise_database_url(TEST_DATABASE_URL))
        name = f"lmsweb_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        server = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with server.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        _migrate(base.set(database=name).render_as_string(hide_password=False))
        yield {"engine": server, "template": name, "base": base}
        with server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()
    else:
        path = tmp_path_factory.mktemp("db") / "template.sqlite3"
        _migrate(f"sqlite:///{path}")
        yield {"path": path}


_counter = itertools.count()


@pytest.fixture
def database_url(template_database, tmp_path):
    """A fresh, migrated database for this test, dropped afterwards."""
    if IS_POSTGRES:
        name = f"lmsweb_t_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:4]}"
        server = template_database["engine"]
        with server.connect() as conn:
            conn.exec_driver_sql(
                f'CREATE DATABASE "{name}" TEMPLATE "{template_database["template"]}"'
            )
        yield template_database["base"].set(database=name).render_as_string(hide_password=False)
        with server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        path = tmp_path / "test.sqlite3"
        shutil.copy(template_database["path"], path)
        yield f"sqlite:///{path}"


class CSRFClient(FlaskClient):
    """A test client that sends the CSRF header on every unsafe request, as htmx does."""

    csrf_token: str | None = None

    def open(self, *args, **kwargs):
        method = (kwargs.get("method") or "GET").upper()
        if self.csrf_token and method not in ("GET", "HEAD", "OPTIONS"):
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("X-CSRFToken", self.csrf_token)
            kwargs["headers"] = headers
        return super().open(*args, **kwargs)


@pytest.fixture
def app_config():
    """Override in a test module to change the configuration."""
    return {}


@pytest.fixture
def app(database_url, app_config):
    app = create_app({**BASE_CONFIG, "SQLALCHEMY_DATABASE_URI": database_url, **app_config})
    app.test_client_class = CSRFClient
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def appctx(app):
    """An application context for domain tests that do not go through HTTP."""
    with app.app_context():
        yield app
        db.session.rollback()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def csrf_from(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert match, "every page carries the CSRF token in a meta tag"
    return match.group(1)


def login(client: CSRFClient, email: str, password: str = PASSWORD):
    """Sign in through the real form, then remember the CSRF token for later POSTs."""
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}
    )
    assert response.status_code == 303, response.text
    client.csrf_token = csrf_from(client.get("/my/training").text)
    return response


class Factory:
    """Builds rows directly in the database and returns them detached, ids loaded."""

    seq = itertools.count(1)

    def __init__(self, app):
        self.app = app

    def _save(self, obj):
        with self.app.app_context():
            db.session.add(obj)
            db.session.commit()
            db.session.refresh(obj)
            db.session.expunge(obj)
        return obj

    def location(self, name: str | None = None) -> Location:
        return self._save(Location(name=name or f"Location {next(self.seq)}"))

    def group(self, name: str | None = None) -> Group:
        return self._save(Group(name=name or f"Group {next(self.seq)}"))

    def course(self, code: str | None = None, seats: int = 10, **kw) -> Course:
        n = next(self.seq)
        return self._save(
            Course(
                code=code or f"C-{n}",
                title=kw.pop("title", f"Course {n}"),
                description=kw.pop("description", ""),
                launch_url=kw.pop("launch_url", "https://content.example.org/c"),
                default_due_days=kw.pop("default_due_days", 30),
                seats_total=seats,
                seats_reserved=0,
                seats_used=0,
                **kw,
            )
        )

    def user(self, *, groups=(), password: str | None = None, **kw) -> User:
        from werkzeug.security import generate_password_hash

        n = next(self.seq)
        kw.setdefault("first_name", f"First{n}")
        kw.setdefault("last_name", f"Last{n}")
        kw.setdefault("email", f"user{n}@example.com")
        kw.setdefault("role", "learner")
        kw.setdefault("status", "active")
        if kw["status"] != "pending":
            kw.setdefault("approved_at", utcnow())
        if password:
            kw["password_hash"] = generate_password_hash(password, method="pbkdf2:sha256:1000")
            kw.setdefault("activated_at", utcnow())
        with self.app.app_context():
            user = User(**kw)
            if groups:
                user.groups = [db.session.get(Group, g.id) for g in groups]
            db.session.add(user)
            db.session.commit()
            db.session.refresh(user)
            db.session.expunge(user)
        return user

    def admin(self, **kw) -> User:
        return self.user(role="admin", password=kw.pop("password", PASSWORD), **kw)

    def learner(self, **kw) -> User:
        return self.user(password=kw.pop("password", PASSWORD), **kw)

    def assignment(
        self, user: User, course: Course, state: str = "assigned", due: date | None = None
    ):
        """Assign through the domain (so counters stay right), then start/complete."""
        from lmsweb import licensing

        with self.app.app_context():
            u, c = db.session.get(User, user.id), db.session.get(Course, course.id)
            a = licensing.assign(u, c, due or date.today() + timedelta(days=30))
            if state in ("in_progress", "completed"):
                licensing.start(a)
            if state == "completed":
                licensing.complete(a, score=90)
            db.session.commit()
            db.session.refresh(a)
            db.session.expunge(a)
        return a


@pytest.fixture
def make(app):
    return Factory(app)


@pytest.fixture
def admin(make):
    return make.admin(first_name="Ada", last_name="Admin", email="ada.admin@example.com")


@pytest.fixture
def admin_client(app, admin):
    """A client signed in as an administrator that sends the CSRF header."""
    client = app.test_client()
    login(client, admin.email)
    return client


@pytest.fixture
def learner(make):
    return make.learner(first_name="Lee", last_name="Learner", email="lee.learner@example.com")


@pytest.fixture
def learner_client(app, learner):
    client = app.test_client()
    login(client, learner.email)
    return client


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def get(app, model, ident):
    """Load a fresh copy of a row (detached)."""
    with app.app_context():
        obj = db.session.get(model, ident)
        if obj is not None:
            db.session.expunge(obj)
        return obj


__all__ = ["HX", "PASSWORD", "count", "get", "login", "CourseAssignment"]


@pytest.fixture(scope="module")
def racers():
    """Two worker processes for the race tests (tests/race_support.py), one pair per module."""
    from tests.race_support import Racers

    racers = Racers(2, BASE_CONFIG)
    yield racers
    racers.close()
