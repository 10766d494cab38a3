"""The learner side: Start and Mark complete, on their own records only."""

from __future__ import annotations

from lmsweb.models import AuditEvent, Course, CourseAssignment
from tests.conftest import HX, count, get


def test_start_moves_the_seat_to_used_and_opens_the_course(app, learner_client, learner, make):
    course = make.course("L-1", seats=2, launch_url="https://content.example.org/l1")
    a = make.assignment(learner, course)
    page = learner_client.get("/my/training")
    assert f'id="assignment-{a.id}"' in page.text and ">Start<" in page.text
    response = learner_client.post(f"/my/training/{a.id}/start", headers=HX)
    assert response.headers["HX-Redirect"] == "https://content.example.org/l1"
    record = get(app, CourseAssignment, a.id)
    assert record.state == "in_progress" and record.started_at is not None
    pool = get(app, Course, course.id)
    assert (pool.seats_reserved, pool.seats_used) == (0, 1)
    # Starting again does not move another seat, and does not audit again.
    learner_client.post(f"/my/training/{a.id}/start", headers=HX)
    assert get(app, Course, course.id).seats_used == 1
    assert count(app, AuditEvent, AuditEvent.action == "training.start") == 1
    assert "Open course" in learner_client.get("/my/training").text


def test_start_without_link_and_complete(app, learner_client, learner, make):
    course = make.course("L-2", seats=1, launch_url="")
    a = make.assignment(learner, course)
    started = learner_client.post(f"/my/training/{a.id}/start", headers=HX)
    assert started.status_code == 200
    assert started.text.lstrip().startswith(f'<li class="card" id="assignment-{a.id}"')
    done = learner_client.post(f"/my/training/{a.id}/complete")
    assert done.status_code == 303
    record = get(app, CourseAssignment, a.id)
    assert record.state == "completed" and record.completed_at is not None
    again = learner_client.post(f"/my/training/{a.id}/complete", headers=HX)
    assert again.status_code == 409
    assert count(app, AuditEvent, AuditEvent.action == "training.complete") == 1


def test_complete_without_start_uses_the_seat(app, learner_client, learner, make):
    course = make.course(seats=1)
    a = make.assignment(learner, course)
    assert learner_client.post(f"/my/training/{a.id}/complete", headers=HX).status_code == 200
    pool = get(app, Course, course.id)
    assert (pool.seats_reserved, pool.seats_used) == (0, 1)


def test_a_learner_cannot_touch_someone_elses_record(app, learner_client, make):
    other = make.user()
    a = make.assignment(other, make.course(seats=1))
    assert learner_client.post(f"/my/training/{a.id}/start").status_code == 404
    assert learner_client.post(f"/my/training/{a.id}/complete").status_code == 404
    assert get(app, CourseAssignment, a.id).state == "assigned"


def test_archived_record_cannot_be_started(app, learner_client, learner, make):
    from lmsweb import licensing
    from lmsweb.extensions import db

    a = make.assignment(learner, make.course(seats=1))
    with app.app_context():
        licensing.archive_activity(db.session.get(CourseAssignment, a.id))
        db.session.commit()
    response = learner_client.post(f"/my/training/{a.id}/start", headers=HX)
    assert response.status_code == 409 and "archived" in response.text


def test_a_learner_is_not_told_this_is_the_training_admin(learner_client, admin_client):
    """The header's brand said "Training admin" to learners on their own training page."""
    mine = learner_client.get("/my/training")
    assert mine.status_code == 200
    assert "Training admin" not in mine.text
    assert "Training admin" in admin_client.get("/admin/users").text
