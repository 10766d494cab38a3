"""The dashboard's figures: counted for the request in a small organisation, read from a
snapshot in a large one.

Counting them (users by status, records per course, the compliance cycle and compliance by
group, location and manager) reads every training record: a few milliseconds at a few
thousand users, seconds at a million. So past `FIGURES_LIVE_MAX_USERS` (by the highest user
id: one index lookup, never a count) the dashboard reads one row of `figure_snapshots`, the
figures of its audience — the organisation, or exactly one administrator scope — as the
worker computed them, and says so: "as of <time>", and the day overdue and expired were
counted against (they change with the date, without any write). The worker recomputes a
snapshot once it is `FIGURES_MAX_AGE_MINUTES` old or from another day; an administrator can
recompute theirs at once (Refresh). A snapshot is never shown to another audience: it is
keyed by scope and carries the scope's members, compared on every read.

Nothing here is maintained by the writers: a snapshot is recomputed from the records, with
the same queries as the live figures (lmsweb/compliance.py, lmsweb/reports.py), so it is
exactly what the live page showed at its time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app, has_app_context
from sqlalchemy import JSON, Column, Date, DateTime, Float, ForeignKey, Integer, Table, func, select

from . import compliance, reports, scope
from .extensions import db
from .models import User, utcnow

LIVE_MAX_USERS = 20_000
MAX_AGE_MINUTES = 15
CYCLE = ("waiting", "renewal_due", "expired")

snapshots = Table(
    "figure_snapshots",
    db.metadata,
    Column("id", Integer, primary_key=True),
    Column("scope_id", ForeignKey("scopes.id", ondelete="CASCADE")),
    Column("day", Date, nullable=False),
    Column("computed_at", DateTime, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("data", JSON, nullable=False),
)


@dataclass
class Figures:
    """Everything the dashboard counts, for one audience on one day."""

    day: date
    users: dict[str, int]
    courses: dict[int, list[int]]  # course id: [records, completed, overdue, due soon]
    cycle: dict[str, int]
    by: dict[str, list[compliance.Row]]
    computed_at: datetime | None = None  # None: counted for this request
    seconds: float = 0.0

    @property
    def live(self) -> bool:
        return self.computed_at is None

    def summary(self) -> reports.Summary:
        return reports.summary(self.users, self.courses)

    def to_json(self, rule: scope.ScopeRule | None) -> dict:
        return {
            "scope": _members(rule),
            "users": self.users,
            "courses": {str(k): v for k, v in self.courses.items()},
            "cycle": self.cycle,
            "by": {
                d: [[r.id, r.name, r.people, *map(r.counts.get, compliance.FIGURES)] for r in rows]
                for d, rows in self.by.items()
            },
        }

    @classmethod
    def from_row(cls, row) -> Figures:
        data = row.data
        by = {
            d: [
                compliance.Row(
                    d, ident, name, people, dict(zip(compliance.FIGURES, counts, strict=True))
                )
                for ident, name, people, *counts in data["by"].get(d, [])
            ]
            for d in compliance.DIMENSIONS
        }
        return cls(
            day=row.day,
            users=data["users"],
            courses={int(k): v for k, v in data["courses"].items()},
            cycle=data["cycle"],
            by=by,
            computed_at=row.computed_at,
            seconds=row.seconds,
        )


def _members(rule: scope.ScopeRule | None) -> dict | None:
    if rule is None:
        return None
    return {"locations": sorted(rule.location_ids), "groups": sorted(rule.group_ids)}


def _setting(name: str, default: int) -> int:
    return int(current_app.config.get(name, default)) if has_app_context() else default


def compute(rule: scope.ScopeRule | None, day: date) -> Figures:
    """The figures of `rule`'s people (None: the organisation's) counted against `day`."""
    started = time.perf_counter()
    figures = Figures(
        day=day,
        users=reports.users_by_status(rule),
        courses=reports.course_counts(day, rule),
        cycle={kind: compliance.people(kind, day, rule) for kind in CYCLE},
        by=compliance.all_figures(day, rule),
    )
    figures.seconds = time.perf_counter() - started
    return figures


def is_large() -> bool:
    """Past FIGURES_LIVE_MAX_USERS users the dashboard reads snapshots (the highest id: one
    index lookup; users are never deleted, so it is an upper bound of their number)."""
    highest = db.session.scalar(select(func.max(User.id))) or 0
    return highest > _setting("FIGURES_LIVE_MAX_USERS", LIVE_MAX_USERS)


def _key(scope_id: int | None):
    return snapshots.c.scope_id.is_(None) if scope_id is None else snapshots.c.scope_id == scope_id


def latest(scope_id: int | None, rule: scope.ScopeRule | None) -> Figures | None:
    """The newest snapshot of that audience, if it still has the same members."""
    row = db.session.execute(
        select(snapshots).where(_key(scope_id)).order_by(snapshots.c.id.desc()).limit(1)
    ).first()
    if row is None or row.data.get("scope") != _members(rule):
        return None
    return Figures.from_row(row)


def store(scope_id: int | None, rule: scope.ScopeRule | None, figures: Figures) -> Figures:
    """Keep `figures` as that audience's snapshot (replacing older ones); the caller commits."""
    figures.computed_at = utcnow()
    db.session.execute(snapshots.delete().where(_key(scope_id)))
    db.session.execute(
        snapshots.insert().values(
            scope_id=scope_id,
            day=figures.day,
            computed_at=figures.computed_at,
            seconds=figures.seconds,
            data=figures.to_json(rule),
        )
    )
    return figures


def refresh(scope_id: int | None, day: date | None = None) -> Figures:
    """Recompute and keep one audience's snapshot; the caller commits."""
    rule = scope.rule_for(scope_id)
    return store(scope_id, rule, compute(rule, day or utcnow().date()))


def for_dashboard(scope_id: int | None, rule: scope.ScopeRule | None) -> Figures | None:
    """What the dashboard shows: counted now when the organisation is small, else the
    audience's snapshot (None: not computed yet)."""
    if not is_large():
        return compute(rule, utcnow().date())
    return latest(scope_id, rule)


def audiences() -> list[int | None]:
    """The organisation and every scope an administrator (not archived) has."""
    scoped = db.session.scalars(
        select(User.scope_id)
        .where(User.role == "admin", User.status != "archived", User.scope_id.is_not(None))
        .distinct()
        .order_by(User.scope_id)
    )
    return [None, *scoped]


def refresh_due(now: datetime | None = None) -> int:
    """The worker's part: recompute each audience's snapshot that is missing, from another
    day, or older than FIGURES_MAX_AGE_MINUTES, committing each. Nothing in a small
    organisation (its dashboard counts live). Returns how many were recomputed."""
    if not is_large():
        return 0
    now = now or utcnow()
    oldest = utcnow() - timedelta(minutes=_setting("FIGURES_MAX_AGE_MINUTES", MAX_AGE_MINUTES))
    kept = {
        row.scope_id: row
        for row in db.session.execute(
            select(snapshots.c.scope_id, snapshots.c.day, snapshots.c.computed_at)
        )
    }
    done = 0
    for scope_id in audiences():
        row = kept.get(scope_id)
        if row is not None and row.day == now.date() and row.computed_at >= oldest:
            continue
        refresh(scope_id, now.date())
        db.session.commit()
        done += 1
    return done


def forget() -> None:
    """Drop every snapshot (after a bulk load that wrote around the domain code, e.g. the
    demo seed): the next worker pass or Refresh computes them again."""
    db.session.execute(snapshots.delete())
