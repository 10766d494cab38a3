"""Activation and password-reset links: signed, expiring, single use; the forgot page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from lmsweb.extensions import db
from lmsweb.models import OutboundEmail, User, utcnow
from lmsweb.tokens import make_token
from tests.conftest import count, csrf_from, get


def _link(app, user, purpose="activate") -> str:
    with app.app_context():
        token = make_token(db.session.get(User, user.id), purpose)
    return f"/{'activate' if purpose == 'activate' else 'reset'}/{token}"


def _post_password(client, path, password, confirm=None):
    token = csrf_from(client.get(path).text)
    return client.post(
        path,
        data={"password": password, "password_confirm": confirm or password, "csrf_token": token},
    )


def test_activation_sets_the_password_signs_in_and_lands_on_my_training(app, client, make):
    user = make.user(status="pending")
    path = _link(app, user)
    response = _post_password(client, path, "a fine passphrase")
    assert response.status_code == 303 and response.headers["Location"] == "/my/training"
    training = client.get("/my/training")
    assert training.status_code == 200 and "My training" in training.text
    saved = get(app, User, user.id)
    assert saved.status == "active" and saved.activated_at and saved.password_hash


def test_the_link_works_once(app, client, make):
    user = make.user(status="active")
    path = _link(app, user)
    assert _post_password(client, path, "a fine passphrase").status_code == 303
    again = app.test_client().get(path)
    assert again.status_code == 410
    assert "already been used" in again.text
    assert "Ask your training administrator to send you a new invitation" in again.text


@pytest.mark.parametrize(
    "password, confirm, error",
    [
        ("short", None, "at least 8 characters"),
        ("password123", None, "too common"),
        ("a fine passphrase", "another phrase!!", "differ"),
    ],
)
def test_weak_or_mismatched_passwords_are_refused(app, client, make, password, confirm, error):
    user = make.user(status="pending")
    response = _post_password(client, _link(app, user), password, confirm)
    assert response.status_code == 422
    assert error in response.text
    assert get(app, User, user.id).password_hash is None


class OldSigner(TimestampSigner):
    """Signs as if eight days ago: a link from last week."""

    def get_timestamp(self) -> int:
        return int((utcnow() - timedelta(days=8)).timestamp()) - 3600


def test_an_expired_link_says_so_and_offers_a_new_one(app, client, make):
    user = make.user(status="pending")
    with app.app_context():
        from lmsweb.tokens import _password_state

        serializer = URLSafeTimedSerializer(
            app.config["SECRET_KEY"], salt="lmsweb-activate", signer=OldSigner
        )
        token = serializer.dumps(
            {"u": user.id, "p": _password_state(db.session.get(User, user.id))}
        )
    response = client.get(f"/activate/{token}")
    assert response.status_code == 410
    assert "expired" in response.text
    assert "new invitation" in response.text


def test_a_forged_link_is_refused(client):
    assert client.get("/activate/not-a-real-token").status_code == 410


def test_forgot_password_answers_the_same_for_known_and_unknown_addresses(app, client, make):
    known = make.learner(email="known@example.com")
    pending = make.user(status="pending", email="pending@example.com")
    answers = []
    for address in ("known@example.com", "nobody@example.com", "pending@example.com"):
        page = client.get("/forgot")
        response = client.post(
            "/forgot", data={"email": address, "csrf_token": csrf_from(page.text)}
        )
        assert response.status_code == 200
        answers.append(response.text.replace(csrf_from(response.text), ""))
    assert answers[0] == answers[1] == answers[2]
    # Only the approved account gets a link: a pending user waits for approval.
    assert count(app, OutboundEmail, OutboundEmail.user_id == known.id) == 1
    assert count(app, OutboundEmail, OutboundEmail.user_id == pending.id) == 0
    assert count(app, OutboundEmail) == 1


def test_a_reset_link_for_a_user_who_is_no_longer_active_is_refused(app, client, make):
    user = make.learner()
    path = _link(app, user, "reset")
    with app.app_context():
        db.session.get(User, user.id).status = "archived"
        db.session.commit()
    assert client.get(path).status_code == 410


def test_an_invitation_to_an_activated_user_links_to_sign_in(app, admin_client, make):
    user = make.learner()
    admin_client.post(f"/admin/users/{user.id}/notify")
    with app.app_context():
        body = db.session.scalar(db.select(OutboundEmail.body_text))
    assert "http://lms.test/login" in body and "/activate/" not in body
