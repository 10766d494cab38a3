"""Users: the Remind row action (a reminder now, about everything unfinished)."""

from __future__ import annotations

from flask import request

from ... import audit, schedule
from ...extensions import db
from ...navigation import back_to_list, refuse
from ...security import scoped
from ...user_queries import get_user_or_404
from . import bp
from .actions import RowActionForm, _answer


def last_reminder_text(when) -> str:
    return (
        f"The last one went {when.strftime('%Y-%m-%d %H:%M')} UTC."
        if when
        else ("None was sent before.")
    )


@bp.route("/<id:user_id>/remind", methods=["POST"])
@scoped
def remind_user(user_id: int):
    """Queue a reminder now; the answer says when the previous one went."""
    user = get_user_or_404(user_id)
    next_url = back_to_list(RowActionForm(request.form).next.data)
    if user.status != "active":
        return refuse(f"{user.name} is {user.status} and gets no reminders.", back=next_url)
    previous = schedule.last_reminders([user.id]).get(user.id)
    reminded, _ = schedule.remind_now([user.id])
    if not reminded:
        return refuse(f"{user.name} has no unfinished training to be reminded of.", back=next_url)
    audit.record("user.remind", target=user, summary=f"Reminder queued to {user.email}")
    db.session.commit()
    return _answer(
        user, f"A reminder is on its way to {user.name}. {last_reminder_text(previous)}", next_url
    )
