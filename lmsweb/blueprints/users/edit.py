"""Users: add a user (dialog or page) and the user's details page."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import parse_qsl, urlsplit

from flask import flash, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from werkzeug.datastructures import MultiDict

from ... import audit, enrolment, lifecycle, notifications, schedule
from ...domain_error import DomainError
from ...extensions import db
from ...licensing import assign
from ...models import AuditEvent, CourseAssignment, OutboundEmail, User
from ...navigation import app_path, app_url, back_to_list, go_back, refuse
from ...rendering import render, see_other, toast
from ...security import scoped
from ...user_forms import NewUserForm, UserForm
from ...user_queries import UserFilters, filtered_users, get_user_or_404
from . import bp


@bp.route("/new", methods=["GET", "POST"])
@scoped
def new_user():
    """Add a user: a dialog to htmx, a page otherwise."""
    form = NewUserForm()
    if request.method == "GET":
        form.next.data = back_to_list()
        return render("users/new.html", "users/_new_dialog.html", form=form)
    if not form.validate():
        return render("users/new.html", "users/_new_dialog.html", status=422, form=form)
    user = User(
        first_name=form.first_name.data.strip(),
        last_name=form.last_name.data.strip(),
        email=form.email.data,
        employee_id=form.user_id.data,
        location_id=form.location.data,
        role=form.role.data,
        status="pending",
    )
    user.groups = form.selected_groups()
    manager = form.selected_manager()
    user.manager_id = manager.id if manager else None
    db.session.add(user)
    db.session.flush()
    courses = form.selected_courses()
    details = {"role": user.role, "groups": [g.name for g in user.groups]}
    try:
        if courses:
            due = form.due_date.data
            for course in courses:
                assign(
                    user,
                    course,
                    due or date.today() + timedelta(days=course.default_due_days),
                    actor=current_user,
                )
            details["courses"] = [c.code for c in courses]
        by_rule, waiting = enrolment.user_joined(user, actor=current_user._get_current_object())
        if form.approve_notify.data:
            lifecycle.approve(user)
            notifications.queue_invitation(user)
            details["approved_and_notified"] = True
    except DomainError as error:
        db.session.rollback()
        message = f"{error.message} The user was not added."
        if request.htmx:
            return refuse(message)
        form.course.errors = [message]
        return render("users/new.html", "users/_new_dialog.html", status=409, form=form)
    audit.record("user.create", target=user, summary=f"Added {user.name}", details=details)
    db.session.commit()
    flash(_added_message(user, len(courses), by_rule, waiting), "success")
    return go_back(_list_at(user, back_to_list(form.next.data)))


def _list_at(user: User, back: str) -> str:
    """The list opened at the new user: its filters kept where they show them, searched by
    their email (so they are on the first page), and their row targeted (highlighted, and
    focused by app.js)."""
    args = MultiDict(parse_qsl(urlsplit(back).query, keep_blank_values=True))
    filters = UserFilters.from_args(args)
    filters.q, filters.page = user.email, 1
    shown = filtered_users(filters).with_only_columns(User.id).where(User.id == user.id)
    if db.session.scalar(shown) is None:
        filters = UserFilters(q=user.email)
    url = url_for("users.index", **filters.to_args().to_dict(flat=False))
    return f"{app_path(url)}#user-{user.id}"


def _added_message(user: User, courses: int, by_rule: int, waiting: int) -> str:
    """e.g. "Added Ana Silva, invitation queued, 2 courses assigned." """
    parts = [f"Added {user.name}"]
    if user.status == "active":
        parts.append("approved, invitation queued")
    else:
        parts.append("pending approval, no invitation sent yet")
    if courses:
        parts.append(f"{courses} {'course' if courses == 1 else 'courses'} assigned")
    if by_rule:
        parts.append(f"{by_rule} more by enrolment rules")
    if waiting:
        parts.append(f"{waiting} waiting for a license")
    return ", ".join(parts) + "."


def _audited_fields(user: User) -> dict:
    """The details an edit can change, as the audit trail records them."""
    return {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "user_id": user.employee_id,
        "location": user.location.name if user.location else None,
        "groups": [g.name for g in user.groups],
        "role": user.role,
        "manager": user.manager.email if user.manager else None,
    }


def _details_context(user: User, form: UserForm) -> dict:
    assignments = db.session.scalars(
        select(CourseAssignment)
        .options(joinedload(CourseAssignment.course))
        .where(CourseAssignment.user_id == user.id)
        .order_by(CourseAssignment.archived_at.is_not(None), CourseAssignment.assigned_at.desc())
    ).all()
    emails = db.session.scalars(
        select(OutboundEmail)
        .where(OutboundEmail.user_id == user.id)
        .order_by(OutboundEmail.id.desc())
        .limit(20)
    ).all()
    events = db.session.scalars(
        select(AuditEvent)
        .options(joinedload(AuditEvent.actor))
        .where(AuditEvent.target_user_id == user.id)
        .order_by(AuditEvent.id.desc())
        .limit(50)
    ).all()
    from .assignments import courses_context

    # The training editor (the Course assignments dialog's body), under its own names.
    training = {f"training_{key}": value for key, value in courses_context(user).items()}
    return {
        **training,
        "user": user,
        "form": form,
        "waiting": enrolment.waiting_for_user(user),
        "last_reminder": schedule.last_reminders([user.id]).get(user.id),
        "assignments": assignments,
        "emails": emails,
        "events": events,
        "back_url": app_url(back_to_list(form.next.data)),
    }


@bp.route("/<id:user_id>", methods=["GET", "POST"])
@scoped
def detail(user_id: int):
    """A user's details: edit them; status, history, training and audit trail."""
    user = get_user_or_404(user_id, with_groups=True)
    if request.method == "GET":
        form = UserForm(obj=user, user=user)
        form.user_id.data = user.employee_id
        form.location.data = user.location_id
        form.group.data = [g.id for g in user.groups]
        form.manager_email.data = user.manager.email if user.manager else None
        form.next.data = back_to_list()
        return render(
            "users/detail.html", "users/_detail_form.html", **_details_context(user, form)
        )
    form = UserForm(user=user)
    if not form.validate():
        return render(
            "users/detail.html",
            "users/_detail_form.html",
            status=422,
            **_details_context(user, form),
        )
    before = _audited_fields(user)
    user.first_name = form.first_name.data.strip()
    user.last_name = form.last_name.data.strip()
    user.email = form.email.data
    user.employee_id = form.user_id.data
    user.location_id = form.location.data
    manager = form.selected_manager()
    user.manager_id = manager.id if manager else None
    lifecycle.set_groups(user, form.selected_groups())
    enrolment.user_joined(user, actor=current_user._get_current_object())
    if form.role.data != user.role:
        user.role = form.role.data
        user.end_sessions()
    db.session.flush()
    db.session.refresh(user, ["location", "manager"])
    after = _audited_fields(user)
    changed = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    back = back_to_list(form.next.data)
    if not changed:
        flash(f"No changes to {user.name}.", "info")
        return go_back(back)
    audit.record(
        "user.update",
        target=user,
        summary=f"Edited {user.name}: {', '.join(changed).replace('_', ' ')}",
        details=changed,
    )
    db.session.commit()
    flash(f"{user.name} was saved.", "success")
    return go_back(back)


@bp.route("/<id:user_id>/reset-password", methods=["POST"])
@scoped
def reset_password(user_id: int):
    """Email the user a link to choose a new password (admins never see or set one)."""
    user = get_user_or_404(user_id, with_groups=True)
    if user.status == "archived":
        return refuse(
            f"{user.name} is archived and gets no email.",
            back=app_path(url_for("users.detail", user_id=user.id)),
        )
    notifications.queue_password_reset(user)
    audit.record(
        "user.password_reset", target=user, summary=f"Sent {user.name} a password reset link"
    )
    db.session.commit()
    message = f"A password reset link is on its way to {user.email}."
    if request.htmx:
        return toast(render("users/_reset_sent.html", user=user), message)
    flash(message, "success")
    return see_other(url_for("users.detail", user_id=user.id))
