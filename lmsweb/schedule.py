"""The compliance schedule of a course, and the worker's pass over it.

One pass, at a given clock: assignment notices, reminders before the due date, repeated
overdue reminders, escalations to managers and renewals of completions about to expire;
then seats for waiting enrolments. Every occurrence is claimed with a unique key in
`schedule_notices` (INSERT ... ON CONFLICT DO NOTHING) before anything is sent, so two
workers running the same pass never email the same occurrence twice. Statements are per
course and per batch, never per user.
"""

from __future__ import annotations

from .models import Course


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def _every(n: int) -> str:
    return {1: "daily", 7: "weekly", 14: "every two weeks", 30: "monthly"}.get(
        n, f"every {_days(n)}"
    )


def _validity(n: int) -> str:
    return {365: "yearly", 730: "every two years", 1095: "every three years"}.get(
        n, f"every {_days(n)}"
    )


def describe(course: Course) -> str:
    """The schedule in plain words, as the course page shows it."""
    if not course.emails_enabled:
        sentences = ["Sends no emails about this course"]
    else:
        first = (
            f"Reminds {_days(course.remind_before_days)} before the due date"
            if course.remind_before_days
            else "Sends no reminder before the due date"
        )
        if course.remind_overdue_every_days:
            first += f", then {_every(course.remind_overdue_every_days)} while overdue"
        else:
            first += ", and none while overdue"
        sentences = [first]
        if course.escalate_after_days:
            sentences.append(f"tells the manager after {_days(course.escalate_after_days)} overdue")
        else:
            sentences.append("never tells the manager")
    if course.valid_for_days:
        sentences.append(
            f"renews {_validity(course.valid_for_days)} "
            f"({_days(course.renew_before_days)} before a completion expires)"
        )
    else:
        sentences.append("a completion never expires")
    return "; ".join(sentences) + "."
