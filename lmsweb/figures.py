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

import os
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import current_app, has_app_context
from sqlalchemy import (
    case,
    exists,
    func,
    select,
)
from sqlalchemy.orm import aliased

from . import compliance, reports, scope
from .extensions import db
from .models import (
    STATUSES,
    CourseAssignment,
    Group,
    Location,
    User,
    WaitingEnrolment,
    user_groups,
    utcnow,
)
from .models import (
    figure_snapshots as snapshots,
)

LIVE_MAX_USERS = 20_000
RECOUNT_MAX_USERS = 200_000
MAX_AGE_MINUTES = 15
CYCLE = ("waiting", "renewal_due", "expired")


@dataclass
class Figures:
    """Everything the dashboard counts, for one audience on one day."""

    day: date
    users: dict[str, int]
    courses: dict[int, list[int]]  # course id: [records, completed, overdue, due soon]
    cycle: dict[str, int]
    by: dict[str, list[compliance.Row]]
    # How many groups, locations and managers have figures; `by` names the shortlist of them
    # (compliance.shortlisted) where there are more.
    totals: dict[str, int] = field(default_factory=dict)
    computed_at: datetime | None = None  # None: counted for this request
    seconds: float = 0.0
    requested_at: datetime | None = None

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
            "totals": self.totals,
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
            totals=data.get("totals", {}),
            computed_at=row.computed_at,
            seconds=row.seconds,
            requested_at=row.requested_at,
        )


def _members(rule: scope.ScopeRule | None) -> dict | None:
    if rule is None:
        return None
    return {"locations": sorted(rule.location_ids), "groups": sorted(rule.group_ids)}


def _setting(name: str, default: int) -> int:
    """The app's configuration, else the environment variable, else the default."""
    value = current_app.config.get(name) if has_app_context() else None
    return int(value if value is not None else os.environ.get(name) or default)


def compute(rule: scope.ScopeRule | None, day: date) -> Figures:
    """The figures of `rule`'s people (None: the organisation's) counted against `day`."""
    return compute_all({0: rule}, day)[0]


def _sets(day: date) -> dict[str, set[int]]:
    """The users of each compliance-cycle tile (compliance.condition's definitions), each
    read from its own index: waiting, renewal due, expired."""
    a, old, new = CourseAssignment, aliased(CourseAssignment), aliased(CourseAssignment)
    renewed = exists(select(new.id).where(new.renewal_of_id == old.id, new.state == "completed"))
    queries = {
        "waiting": select(WaitingEnrolment.user_id).where(WaitingEnrolment.resolved_at.is_(None)),
        "expired": select(old.user_id).where(old.expires_on <= day, ~renewed),
    }
    found = {kind: set(db.session.scalars(query)) for kind, query in queries.items()}
    # Renewals by their own index, the rest of the condition here: with it in the WHERE
    # clause SQLite's planner read every current record instead.
    renewals = db.session.execute(
        select(a.user_id, a.state, a.archived_at).where(a.renewal_of_id.is_not(None))
    )
    found["renewal_due"] = {
        user_id for user_id, state, archived in renewals if state != "completed" and not archived
    }
    return found


def compute_all(rules: dict, day: date) -> dict:
    """The figures of several audiences at once ({key: rule}, a rule None for the whole
    organisation), counted against `day` in one read of the users, their groups and their
    current records (a few seconds of CPU at a million users, where a query per figure cost
    minutes). The definitions are compliance.condition's, which the Users list's links use;
    tests/test_compliance_dashboard.py holds the two side by side."""
    started = time.perf_counter()
    a = CourseAssignment
    current = a.archived_at.is_(None)
    open_ = current & (a.state != "completed")

    def any_(condition):
        return func.max(case((condition, 1), else_=0))

    # Per user with records, in user order (a scan of ix_course_assignments_user_open, which
    # covers it; no WHERE, so no other index tempts the planner): 4 = a current record, 1 =
    # a current one is open (not completed), 2 = an open one is overdue.
    records = _stream(
        select(a.user_id, 4 * any_(current) + any_(open_) + 2 * any_(open_ & (a.due_date < day)))
        .group_by(a.user_id)
        .order_by(a.user_id)
    )
    record = next(records, None)
    cycle_sets = _sets(day)
    expired = cycle_sets["expired"]
    keys = list(rules)
    members = {
        key: (rule.location_ids, rule.group_ids) for key, rule in rules.items() if rule is not None
    }
    users = {key: dict.fromkeys(STATUSES, 0) for key in keys}
    cycle = {key: dict.fromkeys(CYCLE, 0) for key in keys}
    # {key: {dimension: {id: [people, overdue, completed, expired]}}}
    tally = {key: {d: {} for d in compliance.DIMENSIONS} for key in keys}
    links = _stream(
        select(user_groups.c.user_id, user_groups.c.group_id).order_by(
            user_groups.c.user_id, user_groups.c.group_id
        )
    )
    link = next(links, None)
    people = _stream(
        select(User.id, User.status, User.location_id, User.manager_id).order_by(User.id)
    )
    # Three streams in user order, merged: users, their groups, their records.
    for user_id, status, location_id, manager_id in people:
        groups = []
        while link is not None and link[0] <= user_id:
            if link[0] == user_id:
                groups.append(link[1])
            link = next(links, None)
        bits = 0
        while record is not None and record[0] <= user_id:
            if record[0] == user_id:
                bits = record[1]
            record = next(records, None)
        audience = [
            key
            for key in keys
            if rules[key] is None
            or location_id in members[key][0]
            or (members[key][1] and not members[key][1].isdisjoint(groups))
        ]
        if not audience:
            continue
        for key in audience:
            users[key][status] += 1
        if status == "archived":
            continue
        for kind, found in cycle_sets.items():
            if user_id in found:
                for key in audience:
                    cycle[key][kind] += 1
        if not bits & 4:
            continue  # no current record: not among the people counted
        counts = (1, (bits >> 1) & 1, 1 - (bits & 1), int(user_id in expired))
        for key in audience:
            by = tally[key]
            places = [("group", g) for g in groups]
            if location_id is not None:
                places.append(("location", location_id))
            if manager_id is not None:
                places.append(("manager", manager_id))
            for dimension, ident in places:
                row = by[dimension].get(ident)
                if row is None:
                    by[dimension][ident] = list(counts)
                else:
                    for i in range(4):
                        row[i] += counts[i]
    totals = {key: {d: len(rows) for d, rows in by.items()} for key, by in tally.items()}
    for by in tally.values():
        for d, rows in by.items():
            by[d] = {ident: rows[ident] for ident in compliance.shortlisted(d, rows)}
    names = _names(tally)
    result = {}
    for key, rule in rules.items():
        by = {
            d: [
                compliance.Row(
                    d,
                    ident,
                    names[d][ident],
                    n,
                    dict(zip(compliance.FIGURES, (n - late, late, done, gone), strict=True)),
                )
                # A shortlist stays in its order (who needs attention first), all by name.
                for ident, (n, late, done, gone) in (
                    rows.items()
                    if totals[key][d] > len(rows)
                    else sorted(rows.items(), key=lambda item, d=d: (names[d][item[0]], item[0]))
                )
            ]
            for d, rows in tally[key].items()
        }
        result[key] = Figures(
            day=day,
            users=users[key],
            courses=reports.course_counts(day, rule),
            cycle=cycle[key],
            by=by,
            totals=totals[key],
        )
    for figures in result.values():
        figures.seconds = time.perf_counter() - started
    return result


def _stream(query):
    """The rows of `query`, fetched in batches (a server-side cursor on PostgreSQL)."""
    return iter(db.session.execute(query, execution_options={"yield_per": 20_000}))


def _names(tally: dict) -> dict[str, dict[int, str]]:
    wanted = {d: set() for d in compliance.DIMENSIONS}
    for by in tally.values():
        for d, rows in by.items():
            wanted[d].update(rows)
    names: dict[str, dict[int, str]] = {d: {} for d in compliance.DIMENSIONS}
    for d, model in (("group", Group), ("location", Location)):
        names[d] = dict(db.session.execute(select(model.id, model.name)).all())
    ids = sorted(wanted["manager"])
    for chunk in range(0, len(ids), 500):
        names["manager"].update(
            (ident, f"{first} {last}")
            for ident, first, last in db.session.execute(
                select(User.id, User.first_name, User.last_name).where(
                    User.id.in_(ids[chunk : chunk + 500])
                )
            )
        )
    return names


def _highest() -> int:
    """The highest user id: one index lookup, and (users are never deleted) an upper bound
    of their number."""
    return db.session.scalar(select(func.max(User.id))) or 0


def is_large() -> bool:
    """Past FIGURES_LIVE_MAX_USERS users the dashboard reads snapshots."""
    return _highest() > _setting("FIGURES_LIVE_MAX_USERS", LIVE_MAX_USERS)


def recount_in_request() -> bool:
    """Whether a Refresh is counted in the administrator's request (a second or two up to
    FIGURES_RECOUNT_MAX_USERS users) or asked of the worker (longer than a request may last)."""
    return _highest() <= _setting("FIGURES_RECOUNT_MAX_USERS", RECOUNT_MAX_USERS)


def request_recount(scope_id: int | None) -> None:
    """Ask the worker to recount that audience's snapshot at its next pass (a missing one
    it counts anyway); the caller commits."""
    db.session.execute(snapshots.update().where(_key(scope_id)).values(requested_at=utcnow()))


def _key(scope_id: int | None):
    return snapshots.c.scope_id.is_(None) if scope_id is None else snapshots.c.scope_id == scope_id


def latest(scope_id: int | None, rule: scope.ScopeRule | None) -> Figures | None:
    """The newest snapshot of that audience, if it still has the same members (and names a
    shortlist: one from before `totals` may name thousands of managers, and counts again)."""
    row = db.session.execute(
        select(snapshots).where(_key(scope_id)).order_by(snapshots.c.id.desc()).limit(1)
    ).first()
    if row is None or row.data.get("scope") != _members(rule) or "totals" not in row.data:
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
    return refresh_many([scope_id], day)[scope_id]


def refresh_many(scope_ids: list[int | None], day: date | None = None) -> dict:
    """Recompute and keep these audiences' snapshots, in one read; the caller commits."""
    rules = {scope_id: scope.rule_for(scope_id) for scope_id in scope_ids}
    counted = compute_all(rules, day or utcnow().date())
    return {key: store(key, rules[key], figures) for key, figures in counted.items()}


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
    day, older than FIGURES_MAX_AGE_MINUTES or asked for (Refresh), in one read. Nothing in a small
    organisation (its dashboard counts live). Returns how many were recomputed."""
    if not is_large():
        return 0
    now = now or utcnow()
    oldest = utcnow() - timedelta(minutes=_setting("FIGURES_MAX_AGE_MINUTES", MAX_AGE_MINUTES))
    kept = {
        row.scope_id: row
        for row in db.session.execute(
            select(
                snapshots.c.scope_id,
                snapshots.c.day,
                snapshots.c.computed_at,
                snapshots.c.requested_at,
            )
        )
    }
    due = [
        scope_id
        for scope_id in audiences()
        if (row := kept.get(scope_id)) is None
        or row.day != now.date()
        or row.computed_at < oldest
        or row.requested_at is not None
    ]
    if due:
        refresh_many(due, now.date())
        db.session.commit()
    return len(due)


def forget() -> None:
    """Drop every snapshot (after a bulk load that wrote around the domain code, e.g. the
    demo seed): the next worker pass or Refresh computes them again."""
    db.session.execute(snapshots.delete())
