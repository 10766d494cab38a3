"""Sign-in, sign-out, activation and password reset; the health check."""

from __future__ import annotations

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
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from sqlalchemy import func, select, text
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from .. import audit, throttle
from ..auth_session import end_session, start_session
from ..errors import _render_error
from ..extensions import db
from ..models import User, utcnow
from ..navigation import app_url, refuse, safe_next
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
CSRF_MESSAGE = (
    "This form has expired or is missing its security token. Reload the page and try again."
)
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
    if request.method == "POST" and not current_app.config.get("PASSWORD_LOGIN", True):
        return _render_error(403, "Sign in with your organisation's account.")
    if form.validate_on_submit():
        email = form.email.data
        if throttle.login_blocked(email):
            return _too_many_attempts(form)
        user = find_by_email(email)
        password_ok = check_password_hash(
            user.password_hash if user and user.password_hash else _DUMMY_HASH, form.password.data
        )
        if user is not None and user.password_hash and password_ok and user.is_active:
            throttle.login_succeeded(email)
            start_session(user)
            db.session.commit()
            next_path = safe_next(request.args.get("next"))
            return redirect(app_url(next_path) if next_path else home_for(user), code=303)
        throttle.login_failed(email)
        form.password.errors.append("That email and password do not match an active account.")
    status = 422 if form.errors else 200
    return render_template("auth/login.html", form=form), status


def _too_many_attempts(form: LoginForm):
    message = (
        "Too many failed sign-in attempts for this account or from this address. "
        "Wait a few minutes and try again, or reset your password."
    )
    if request.htmx:
        return refuse(message, 429)
    form.password.errors.append(message)
    return render_template("auth/login.html", form=form), 429


@bp.errorhandler(CSRFError)
def cookie_blocked(error: CSRFError):
    """A sign-in whose session cookie never came back: inside a portal frame that is the
    browser blocking third-party cookies. Offer a sign-in in a top-level window instead
    of failing silently."""
    if request.endpoint != "auth.login" or session.get("csrf_token"):
        return _render_error(400, CSRF_MESSAGE)
    form = LoginForm(formdata=None)
    return render_template("auth/login.html", form=form, cookie_blocked=True), 400


@bp.route("/login/done")
def signed_in_window():
    """The end of a sign-in in a top-level window: back to the portal's frame."""
    return render_template("auth/signed_in_window.html")


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out, ending every copy of this session."""
    user = db.session.get(User, current_user.id)
    user.end_sessions()
    db.session.commit()
    end_session()
    flash("You are signed out.", "success")
    return redirect(url_for("auth.login"), code=303)


def _set_password_view(token: str, purpose: str, title: str):
    if not current_app.config.get("PASSWORD_LOGIN", True):
        message = "Passwords are not used here: sign in with your organisation's account."
        return render_template("auth/link_invalid.html", message=message, purpose=purpose), 410
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
        start_session(user)
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
