"""The domain model. Training data is append-only: see the triggers in the first migration."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db


def utcnow() -> datetime:
    """Naive UTC, stored the same way on SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


# The user vocabularies, with the words the pages use for them.
ROLE_LABELS = {"learner": "Learner", "admin": "Administrator"}
STATUS_LABELS = {"pending": "Pending", "active": "Active", "archived": "Archived"}
ROLES = tuple(ROLE_LABELS)
STATUSES = tuple(STATUS_LABELS)
ASSIGNMENT_STATES = ("assigned", "in_progress", "completed")
EMAIL_STATUSES = ("queued", "sending", "sent", "failed")

user_groups = Table(
    "user_groups",
    db.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="RESTRICT"), primary_key=True),
    # Its group's members: ix_user_groups_group_user (0002_user_search).
    Column("group_id", ForeignKey("groups.id", ondelete="RESTRICT"), primary_key=True),
)


# A scope's members (0010_scopes): locations and groups an administrator or SCIM token reaches.
scope_locations = Table(
    "scope_locations",
    db.metadata,
    Column("scope_id", ForeignKey("scopes.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "location_id", ForeignKey("locations.id", ondelete="RESTRICT"), primary_key=True, index=True
    ),
)
scope_groups = Table(
    "scope_groups",
    db.metadata,
    Column("scope_id", ForeignKey("scopes.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="RESTRICT"), primary_key=True, index=True),
)


# Who each scope reaches, kept by triggers (0013_scope_members): one row per scope and user
# in it, with the user's status and role, so a scoped list is an index range. Never written
# by the application; `flask lms check` compares it with `scope.defined_condition`.
scope_members = Table(
    "scope_members",
    db.metadata,
    Column("scope_id", ForeignKey("scopes.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("status", String(16), nullable=False),
    Column("role", String(16), nullable=False),
    Index("ix_scope_members_status", "scope_id", "status", "role"),
)

# How many users of each status and role the organisation ("all", ref_id 0), each location
# and each group holds, kept by triggers (0015_user_counts): a count is the sum of `n` over
# its key (PostgreSQL appends a row per change until `user_counts.merge`). Never written by
# the application but to merge; `flask lms check` compares it with the users.
user_counts = Table(
    "user_counts",
    db.metadata,
    Column("kind", String(8), nullable=False),
    Column("ref_id", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("role", String(16), nullable=False),
    Column("n", Integer, nullable=False),
    Index("ix_user_counts_key", "kind", "ref_id", "status", "role"),
)

# The dashboard's figures counted for one audience (0012_figures): the organisation (scope_id
# NULL) or an administrator scope; lmsweb/figures.py counts and reads them.
figure_snapshots = Table(
    "figure_snapshots",
    db.metadata,
    Column("id", Integer, primary_key=True),
    Column("scope_id", ForeignKey("scopes.id", ondelete="CASCADE")),
    Column("day", Date, nullable=False),
    Column("computed_at", DateTime, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("data", JSON, nullable=False),
    # An administrator asked for a recount too large to run in their request: the worker's.
    Column("requested_at", DateTime),
    Index("ix_figure_snapshots_scope", "scope_id", "id"),
)


class Location(db.Model):
    __tablename__ = "locations"
    __table_args__ = (Index("uq_locations_name_lower", func.lower(text("name")), unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<Location {self.name!r}>"


class Group(db.Model):
    __tablename__ = "groups"
    __table_args__ = (Index("uq_groups_name_lower", func.lower(text("name")), unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    # The directory's own id for a group provisioned over SCIM (0008_identity).
    scim_external_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<Group {self.name!r}>"


class Scope(db.Model):
    """Who a scoped administrator or SCIM token reaches: the users at one of `locations` or
    in one of `groups`. Empty reaches nobody. See lmsweb/scope.py."""

    __tablename__ = "scopes"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    locations: Mapped[list[Location]] = relationship(
        secondary=scope_locations, order_by=lambda: Location.name
    )
    groups: Mapped[list[Group]] = relationship(secondary=scope_groups, order_by=lambda: Group.name)

    @property
    def label(self) -> str:
        """ "Lisbon, Porto, Warehouse": what the top bar shows."""
        names = [item.name for item in [*self.locations, *self.groups]]
        return ", ".join(names) if names else "nobody"

    def __repr__(self) -> str:
        return f"<Scope {self.label!r}>"


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        CheckConstraint("role IN ('learner', 'admin')", name="role"),
        CheckConstraint("status IN ('pending', 'active', 'archived')", name="status"),
        Index("ix_users_status_role_name", "status", "role", "last_name", "first_name", "id"),
        Index("ix_users_name", "last_name", "first_name", "id"),
        # SCIM's `userName eq ...`, the directory's matching key (0008_identity). Not
        # unique in the database: the email (unique) is the identity lmsweb relies on, and
        # the users form would meet a userName clash as an error it cannot explain.
        Index(
            "ix_users_scim_user_name",
            func.lower(func.coalesce(text("scim_user_name"), text("email"))),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    # The organisation's own user/employee ID; text, so leading zeros survive.
    employee_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16), default="learner")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    location_id: Mapped[int | None] = mapped_column(
        ForeignKey("locations.id", ondelete="RESTRICT"), index=True
    )
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # Bumped on sign-out, password change, role change and archive: older sessions end.
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The latest invitation's delivery state (NULL, queued, sent, failed) and why it failed:
    # denormalised so the users list shows it without a query per row. Written with the
    # message's own status, in the same transaction.
    invite_status: Mapped[str | None] = mapped_column(String(16))
    invite_error: Mapped[str | None] = mapped_column(Text)
    # Escalations of this user's overdue training go to the manager (0007_compliance).
    manager_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    # Administrators who asked for the weekly compliance digest.
    wants_digest: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # SCIM: the directory's userName when it differs from the email (Entra's UPN, say),
    # and when a SCIM client DELETEd the user: archived here, gone (404) for SCIM.
    scim_user_name: Mapped[str | None] = mapped_column(String(254))
    scim_deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    # An administrator with a scope sees only its users; NULL is organisation-wide
    # (0010_scopes). Meaningless for learners.
    scope_id: Mapped[int | None] = mapped_column(
        ForeignKey("scopes.id", ondelete="RESTRICT"), index=True
    )

    location: Mapped[Location | None] = relationship()
    scope: Mapped[Scope | None] = relationship()
    manager: Mapped[User | None] = relationship(remote_side=lambda: [User.id])
    groups: Mapped[list[Group]] = relationship(secondary=user_groups, order_by=lambda: Group.name)

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_active(self) -> bool:  # Flask-Login: archived users cannot sign in
        return self.status != "archived"

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    def end_sessions(self) -> None:
        """Invalidate every session signed in as this user."""
        self.session_version = (self.session_version or 1) + 1

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email!r}>"


class Course(db.Model):
    __tablename__ = "courses"
    __table_args__ = (
        CheckConstraint("seats_total >= 0", name="seats_total_nonnegative"),
        CheckConstraint("seats_reserved >= 0", name="seats_reserved_nonnegative"),
        CheckConstraint("seats_used >= 0", name="seats_used_nonnegative"),
        CheckConstraint("seats_reserved + seats_used <= seats_total", name="seats_within_total"),
        CheckConstraint("default_due_days > 0", name="default_due_days_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    launch_url: Mapped[str] = mapped_column(String(500), default="")
    default_due_days: Mapped[int] = mapped_column(Integer, default=30)
    seats_total: Mapped[int] = mapped_column(Integer, default=0)
    seats_reserved: Mapped[int] = mapped_column(Integer, default=0)
    seats_used: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The compliance schedule (0007_compliance); 0 turns each step off.
    remind_before_days: Mapped[int] = mapped_column(Integer, default=7, server_default="0")
    remind_overdue_every_days: Mapped[int] = mapped_column(Integer, default=7, server_default="0")
    escalate_after_days: Mapped[int] = mapped_column(Integer, default=14, server_default="0")
    valid_for_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    renew_before_days: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    # Off: the worker sends nothing about this course (assignment notices included).
    emails_enabled: Mapped[bool] = mapped_column(default=True, server_default=text("true"))

    @property
    def seats_available(self) -> int:
        return max(self.seats_total - self.seats_reserved - self.seats_used, 0)

    def __repr__(self) -> str:
        return f"<Course {self.code!r}>"


class CourseAssignment(db.Model):
    """A training record. Never deleted; archiving sets `archived_at`."""

    __tablename__ = "course_assignments"
    __table_args__ = (
        CheckConstraint("state IN ('assigned', 'in_progress', 'completed')", name="state"),
        # At most one unarchived assignment per user and course.
        Index(
            "uq_course_assignments_open",
            "user_id",
            "course_id",
            unique=True,
            sqlite_where=text("archived_at IS NULL"),
            postgresql_where=text("archived_at IS NULL"),
        ),
        Index("ix_course_assignments_course_state", "course_id", "state"),
        Index("ix_course_assignments_due_date", "due_date"),
        # The dashboard's figures (migration 0003_dashboard).
        Index("ix_course_assignments_open_course", "archived_at", "course_id", "state", "due_date"),
        Index("ix_course_assignments_open_due", "archived_at", "state", "due_date", "course_id"),
        Index("ix_course_assignments_notified", "notified_at"),
        # The records a rule made (migration 0018_rule_records).
        Index(
            "ix_course_assignments_rule",
            "rule_id",
            sqlite_where=text("rule_id IS NOT NULL"),
            postgresql_where=text("rule_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="RESTRICT"))
    assigned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    assigned_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    due_date: Mapped[date | None] = mapped_column(Date)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    score: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="assigned")
    archived_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Why the record was archived: unassigned, user_archived or activity_archived.
    archive_reason: Mapped[str | None] = mapped_column(String(32))
    # The compliance cycle (0007_compliance): when the assignment notice went (NULL: the
    # worker sends it), the enrolment rule that made it, the completion it renews, and for a
    # renewed completion the day it expires.
    notified_at: Mapped[datetime | None] = mapped_column(DateTime)
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrolment_rules.id", ondelete="RESTRICT")
    )
    renewal_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("course_assignments.id", ondelete="RESTRICT")
    )
    expires_on: Mapped[date | None] = mapped_column(Date)

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    course: Mapped[Course] = relationship()

    @property
    def started(self) -> bool:
        return self.state != "assigned"

    @property
    def expired(self) -> bool:
        """A renewed completion past its expiry date (the record itself stays)."""
        return self.expires_on is not None and self.expires_on <= utcnow().date()

    @property
    def renewal_due(self) -> bool:
        return self.renewal_of_id is not None and self.state != "completed" and not self.archived_at

    @property
    def overdue(self) -> bool:
        return (
            self.state != "completed"
            and self.archived_at is None
            and self.due_date is not None
            and self.due_date < utcnow().date()
        )


class OutboundEmail(db.Model):
    """The outbox: written in the request's transaction, sent later by `flask lms send-mail`."""

    __tablename__ = "outbound_emails"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'sending', 'sent', 'failed')", name="status"),
        Index("ix_outbound_emails_status_next", "status", "next_attempt_at"),
        Index("ix_outbound_emails_user_kind", "user_id", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    recipient: Mapped[str] = mapped_column(String(254))
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User | None] = relationship()


class AuditEvent(db.Model):
    """Append-only: the database refuses UPDATE and DELETE on this table."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_target_user", "target_user_id", "id"),
        Index("ix_audit_events_actor", "actor_id", "id"),
        Index("ix_audit_events_action", "action", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32), default="")
    target_id: Mapped[int | None] = mapped_column(Integer)
    target_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    summary: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)

    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])
    target_user: Mapped[User | None] = relationship(foreign_keys=[target_user_id])

    @property
    def actor_label(self) -> str:
        """Who acted: a user, a SCIM client by its token's name, or the system."""
        return actor_label(self.actor.email if self.actor else None, self.details)


def actor_label(actor_email: str | None, details: dict | None) -> str:
    """An audit event's actor from its columns (the export reads them without ORM objects)."""
    if actor_email is not None:
        return actor_email
    token = (details or {}).get("scim_token")
    return f"SCIM token “{token}”" if token else "system"


IMPORT_STATUSES = ("previewing", "ready", "applying", "done", "failed")


class ImportJob(db.Model):
    """An uploaded roster: its rows, preview and outcome live here, not in a process's memory,
    so a background job survives the page being left and any worker can report on it."""

    __tablename__ = "import_jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('previewing', 'ready', 'applying', 'done', 'failed')", name="status"
        ),
        Index("ix_import_jobs_created_by", "created_by_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    filename: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16), default="previewing")
    create_missing: Mapped[bool] = mapped_column(default=False)
    # The documents are loaded when first used, not with the job: the page polls a running
    # job every second, and loading a 100,000-row job's rows and verdicts (13 MB of JSON)
    # cost each poll 0.2-0.75 s of CPU, beside the worker doing the import.
    # {"columns": [field, ...], "rows": [[cell, ...], ...]}: normalised text cells.
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, deferred=True)
    # {"rows": [[action, reasons, user_id], ...], "totals": {...}, "licenses": [...], ...}
    preview: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, deferred=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, deferred=True)
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The worker running this job holds it until then; a crashed worker's job is taken over
    # once the lease has passed (0007_compliance).
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)

    created_by: Mapped[User | None] = relationship()


class EnrolmentRule(db.Model):
    """Members of a group, or people at a location, get a course due in N days."""

    __tablename__ = "enrolment_rules"
    __table_args__ = (
        CheckConstraint("(group_id IS NULL) <> (location_id IS NULL)", name="group_or_location"),
        CheckConstraint("due_days > 0", name="due_days_positive"),
        Index("ix_enrolment_rules_group", "group_id"),
        Index("ix_enrolment_rules_location", "location_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="RESTRICT"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id", ondelete="RESTRICT"))
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="RESTRICT"))
    due_days: Mapped[int] = mapped_column(Integer, default=30)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    group: Mapped[Group | None] = relationship()
    location: Mapped[Location | None] = relationship()
    course: Mapped[Course] = relationship()

    @property
    def audience(self) -> str:
        if self.group is not None:
            return f"members of {self.group.name}"
        return f"people at {self.location.name if self.location else '?'}"


class WaitingEnrolment(db.Model):
    """An assignment a rule (or a renewal) wanted to make while the pool had no free seat;
    made as soon as seats are added."""

    __tablename__ = "waiting_enrolments"
    __table_args__ = (
        Index(
            "uq_waiting_enrolments_open",
            "user_id",
            "course_id",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index("ix_waiting_enrolments_course", "course_id", "resolved_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="RESTRICT"))
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrolment_rules.id", ondelete="RESTRICT")
    )
    renewal_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("course_assignments.id", ondelete="RESTRICT")
    )
    due_days: Mapped[int] = mapped_column(Integer, default=30)
    # A renewal is due on the old completion's expiry date, whenever the seat comes.
    due_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("course_assignments.id", ondelete="RESTRICT")
    )

    user: Mapped[User] = relationship()
    course: Mapped[Course] = relationship()
    rule: Mapped[EnrolmentRule | None] = relationship()


class ScheduleNotice(db.Model):
    """One row per occurrence the worker acted on (a reminder, an escalation, a renewal, a
    digest). The unique key is the claim: a second worker's insert of the same key does
    nothing, so no occurrence is ever emailed twice."""

    __tablename__ = "schedule_notices"
    __table_args__ = (
        Index("ix_schedule_notices_assignment", "assignment_id", "kind", "occurrence"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("course_assignments.id", ondelete="RESTRICT")
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    occurrence: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ScimToken(db.Model):
    """A SCIM client's bearer token: only its SHA-256 is stored, the token is shown once."""

    __tablename__ = "scim_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters, so an administrator can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(12))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    # A scoped token sees and provisions only its scope's users (0010_scopes).
    scope_id: Mapped[int | None] = mapped_column(
        ForeignKey("scopes.id", ondelete="RESTRICT"), index=True
    )

    created_by: Mapped[User | None] = relationship()
    scope: Mapped[Scope | None] = relationship()

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class LocationAllocation(db.Model):
    """ "Lisbon may use 40 of these 200 seats": a cap on the seats (reserved + used) held by
    open records of the course whose user is at the location. Enforced in licensing.py
    under the allocation's row lock, as the pool is (0010_scopes)."""

    __tablename__ = "course_location_allocations"
    __table_args__ = (CheckConstraint("seats >= 0", name="seats_nonnegative"),)

    course_id: Mapped[int] = mapped_column(
        ForeignKey("courses.id", ondelete="RESTRICT"), primary_key=True
    )
    location_id: Mapped[int] = mapped_column(
        ForeignKey("locations.id", ondelete="RESTRICT"), primary_key=True
    )
    seats: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    course: Mapped[Course] = relationship()
    location: Mapped[Location] = relationship()
