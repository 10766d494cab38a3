"""The demo seed's bulk path: on SQLite a large seed drops the indexes and the search
trigger of the tables it fills and builds them again afterwards; nothing may be lost."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from lmsweb import seed
from lmsweb.extensions import db
from lmsweb.models import CourseAssignment, User
from tests.conftest import HX, IS_POSTGRES

SCHEMA = "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') ORDER BY 2"


@pytest.mark.skipif(IS_POSTGRES, reason="the bulk path is SQLite's")
def test_bulk_seed_rebuilds_every_index_trigger_and_the_search_table(
    app, admin_client, monkeypatch
):
    monkeypatch.setattr(seed, "BULK_FROM", 1)
    with app.app_context():
        before = db.session.execute(sa.text(SCHEMA)).all()
        counts = seed.seed_demo(600)
        db.session.commit()
        assert db.session.execute(sa.text(SCHEMA)).all() == before
        assert db.session.execute(sa.text("PRAGMA integrity_check")).scalar() == "ok"
        # The trigram table answers exactly what a scan of the rows answers.
        for word in ("ansen", "arti", ".12", "@demo"):
            found = set(
                db.session.scalars(
                    sa.text("SELECT rowid FROM users_search WHERE users_search MATCH :w"),
                    {"w": f'"{word}"'},
                )
            )
            pattern = f"%{word}%"
            scanned = set(
                db.session.scalars(
                    sa.select(User.id).where(
                        sa.or_(
                            User.first_name.ilike(pattern),
                            User.last_name.ilike(pattern),
                            User.email.ilike(pattern),
                            User.employee_id.ilike(pattern),
                        )
                    )
                )
            )
            assert found == scanned and found, word
    assert counts["users"] == 600
    # The trigger is back: a user written afterwards by plain SQL is found.
    with app.app_context():
        db.session.execute(
            sa.text(
                "INSERT INTO users (email, first_name, last_name, role, status, "
                "session_version, created_at) VALUES ('late@acme.example', 'Late', "
                "'Zyxwv', 'learner', 'active', 1, CURRENT_TIMESTAMP)"
            )
        )
        db.session.commit()
    html = admin_client.get("/admin/users?q=yxw", headers=HX).text
    assert html.count('<tr id="user-') == 1 and "Zyxwv" in html


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL's bulk path")
def test_bulk_seed_on_postgresql_copies_and_rebuilds_every_index(app, admin_client, monkeypatch):
    indexes = (
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename IN ('users', 'user_groups', 'course_assignments') ORDER BY 1"
    )
    monkeypatch.setattr(seed, "BULK_FROM", 1)
    with app.app_context():
        before = db.session.execute(sa.text(indexes)).all()
        counts = seed.seed_demo(600)
        db.session.commit()
        assert db.session.execute(sa.text(indexes)).all() == before
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 600 + 1
        # The ids were written by COPY: the sequence moved past them.
        late = User(email="late@acme.example", first_name="Late", last_name="Zyxwv")
        db.session.add(late)
        db.session.commit()
        assert late.id > 600
    assert counts["users"] == 600 and counts["assignments"] > 0
    html = admin_client.get("/admin/users?q=yxw", headers=HX).text
    assert html.count('<tr id="user-') == 1 and "Zyxwv" in html


def test_seeded_rows_read_back_through_the_models(app):
    """The driver-level insert writes dates the ORM reads back as dates, on either engine."""
    with app.app_context():
        seed.seed_demo(200)
        db.session.commit()
        user = db.session.scalars(sa.select(User).where(User.status == "archived").limit(1)).one()
        assert isinstance(user.created_at, datetime)
        assert user.created_at < user.approved_at and isinstance(user.archived_at, datetime)
        record = db.session.scalars(sa.select(CourseAssignment).limit(1)).one()
        assert isinstance(record.due_date, date)
        days = record.course.default_due_days
        assert record.due_date == (record.assigned_at + timedelta(days=days)).date()
