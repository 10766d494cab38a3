"""Users: the Remind row action (a reminder now, about everything unfinished)."""

from __future__ import annotations

from flask import request

from ... import audit, schedule
from ...extensions import db
from ...models import User
from ..auth import safe_next
from . import bp
from .actions import RowActionForm, _answer, _refuse


def last_reminder_text(when) -> str:
    return (
        f"The last one went {when.strftime('%Y-%m-%d %H:%M')} UTC."
        if when
        else ("None was sent before.")
    )


@bp.route("/<int:user_id>/remind", methods=["POST"])
def remind_user(user_id: int):
    """Queue a reminder now; the answer says when the previous one went."""
    user = db.get_or_404(User, user_id)
    next_url = safe_next(RowActionForm(request.form).next.data)
    if user.status != "active":
        return _refuse(f"{user.name} is {user.status} and gets no reminders.", next_url)
    previous = schedule.last_reminders([user.id]).get(user.id)
    reminded, _ = schedule.remind_now([user.id])
    if not reminded:
        return _refuse(f"{user.name} has no unfinished training to be reminded of.", next_url)
    audit.record("user.remind", target=user, summary=f"Reminder queued to {user.email}")
    db.session.commit()
    return _answer(
        user, f"A reminder is on its way to {user.name}. {last_reminder_text(previous)}", next_url
    )
