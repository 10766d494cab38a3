"""A row whose invitation is queued asks for its status every 5 s, and stops once it is
sent or failed, or after a bounded number of polls."""

from __future__ import annotations

from lmsweb.extensions import db
from lmsweb.models import User
from tests.conftest import HX


def _set(app, user, status):
    with app.app_context():
        db.session.get(User, user.id).invite_status = status
        db.session.commit()


def test_a_queued_row_polls_and_a_sent_one_does_not(app, admin_client, make):
    user = make.user(first_name="Quinn")
    _set(app, user, "queued")
    listing = admin_client.get("/admin/users?q=quinn", headers=HX).text
    assert f'data-hx-get="/admin/users/{user.id}/invite-status"' in listing
    assert 'data-hx-trigger="every 5s"' in listing

    again = admin_client.get(f"/admin/users/{user.id}/invite-status?poll=0", headers=HX)
    assert again.status_code == 200 and "Invitation queued" in again.text
    assert "poll=1" in again.text and "<html" not in again.text

    _set(app, user, "sent")
    done = admin_client.get(f"/admin/users/{user.id}/invite-status?poll=1", headers=HX).text
    assert "Notified" in done and "data-hx-trigger" not in done


def test_polling_is_bounded(app, admin_client, make):
    user = make.user()
    _set(app, user, "queued")
    last = admin_client.get(f"/admin/users/{user.id}/invite-status?poll=59", headers=HX).text
    assert "Invitation queued" in last and "data-hx-trigger" not in last


def test_the_status_is_a_page_too_and_bad_input_is_harmless(app, admin_client, make):
    user = make.user()
    page = admin_client.get(f"/admin/users/{user.id}/invite-status?poll=x")
    assert page.status_code == 200 and "<html" in page.text
    assert admin_client.get("/admin/users/999999/invite-status").status_code == 404


def test_the_polling_costs_a_row_little(app, admin_client, make):
    user = make.user(first_name="Quinn")
    _set(app, user, "queued")
    listing = admin_client.get("/admin/users?q=quinn", headers=HX).text
    row = listing[listing.index(f'<tr id="user-{user.id}"') :]
    status = row[row.index('<ul class="status-icons"') :]
    opening = status[: status.index(">") + 1]
    # The swap (outerHTML) is inherited from the tbody: a queued row carries ~100 bytes more.
    assert "data-hx-swap" not in opening and len(opening) <= 130, opening
