"""Sign-in, sign-out, activation and password reset; the health check."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select, text
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from .. import audit
from ..extensions import db
from ..models import User, utcnow
from ..notifications import has_line_break, queue_password_reset
from ..security import public
from ..tokens import InvalidToken, read_token

bp = Blueprint("auth", __name__)

COMMON_PASSWORDS = {
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyui",
    "qwerty123",
    "iloveyou",
    "letmein1",
    "welcome1",
    "welcome123",
    "admin123",
    "abc12345",
    "football",
    "sunshine",
    "princess",
    "passw0rd",
    "trustno1",
    "11111111",
    "00000000",
    "changeme",
    "baseball",
    "superman",
}
# Compared against when the email is unknown, so both answers take as long.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(message="Enter your email address.")])
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password.")])


def not_common(form, field):
    if field.data and field.data.lower() in COMMON_PASSWORDS:
        raise ValidationError("That password is too common; choose another.")


class PasswordForm(FlaskForm):
    password = PasswordField(
        "New password",
        validators=[
            DataRequired(message="Choose a password."),
            Length(min=8, max=200, message="Use at least 8 characters."),
            not_common,
        ],
    )
    password_confirm = PasswordField(
        "Repeat the password",
        validators=[
            DataRequired(message="Repeat the password."),
            EqualTo("password", message="The two passwords differ."),
        ],
    )


class ForgotForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(message="Enter your email address.")])


def safe_next(target: str | None) -> str | None:
    """Only same-site paths: never an open redirect."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def home_for(user: User) -> str:
    return url_for("users.index") if user.is_admin else url_for("learner.training")


def find_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    """Sign in with email and password."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(home_for(current_user))
    form = LoginForm()
    if form.validate_on_submit():
        user = find_by_email(form.email.data)
        password_ok = check_password_hash(
            user.password_hash if user and user.password_hash else _DUMMY_HASH, form.password.data
        )
        if user is not None and user.password_hash and password_ok and user.is_active:
            session.clear()
            login_user(user)
            session.permanent = True
            user.last_login_at = utcnow()
            db.session.commit()
            return redirect(safe_next(request.args.get("next")) or home_for(user), code=303)
        form.password.errors.append("That email and password do not match an active account.")
    status = 422 if form.errors else 200
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out, ending every copy of this session."""
    user = db.session.get(User, current_user.id)
    user.end_sessions()
    db.session.commit()
    logout_user()
    session.clear()
    flash("You are signed out.", "success")
    return redirect(url_for("auth.login"), code=303)


def _set_password_view(token: str, purpose: str, title: str):
    try:
        user = read_token(token, purpose)
    except InvalidToken as exc:
        return render_template("auth/link_invalid.html", message=exc.message, purpose=purpose), 410
    form = PasswordForm()
    if form.validate_on_submit():
        user.password_hash = generate_password_hash(form.password.data)
        user.end_sessions()
        now = utcnow()
        # Choosing a first password through either link activates the account.
        user.activated_at = user.activated_at or now
        if purpose == "activate" and user.status == "pending":
            user.status = "active"
            user.approved_at = user.approved_at or now
        activating = purpose == "activate"
        audit.record(
            "user.activate" if activating else "user.reset_password",
            target=user,
            actor=user,
            summary=f"{user.email} "
            + ("activated their account" if activating else "set a new password"),
        )
        session.clear()
        login_user(user)
        session.permanent = True
        user.last_login_at = now
        db.session.commit()
        flash("Your password is set. Welcome!", "success")
        return redirect(home_for(user), code=303)
    status = 422 if form.errors else 200
    return render_template("auth/set_password.html", form=form, user=user, title=title), status


@bp.route("/activate/<token>", methods=["GET", "POST"])
@public
def activate(token: str):
    """Activate an account by choosing a password (the link works once)."""
    return _set_password_view(token, "activate", "Activate your account")


@bp.route("/reset/<token>", methods=["GET", "POST"])
@public
def reset_password(token: str):
    """Choose a new password from a reset link."""
    return _set_password_view(token, "reset", "Choose a new password")


@bp.route("/forgot", methods=["GET", "POST"])
@public
def forgot_password():
    """Ask for a reset link; the answer is the same whether or not the address is known."""
    form = ForgotForm()
    if form.validate_on_submit():
        user = find_by_email(form.email.data)
        # Only approved accounts: a reset link must not let a pending user in before an
        # administrator approves them (they get an invitation when approved).
        if user is not None and user.status == "active" and not has_line_break(user.email):
            queue_password_reset(user)
            audit.record(
                "user.forgot_password", target=user, actor=user, summary="Reset link requested"
            )
            db.session.commit()
        return render_template("auth/forgot_sent.html")
    status = 422 if form.errors else 200
    return render_template("auth/forgot.html", form=form), status


@bp.route("/healthz")
@public
def healthz():
    """Liveness and database reachability, for load balancers."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any database failure means unhealthy
        current_app.logger.exception("Health check failed")
        return {"status": "error", "database": "unreachable"}, 503
    return {"status": "ok"}


@bp.route("/")
def home():
    """The start page for whoever is signed in."""
    return redirect(home_for(current_user))
