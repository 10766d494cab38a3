"""Sign-in with the organisation's OpenID Connect provider."""

from __future__ import annotations

import secrets

from authlib.common.errors import AuthlibBaseError
from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from joserfc.errors import JoseError
from requests.exceptions import RequestException

from .. import oidc
from ..auth_session import start_session
from ..extensions import db
from ..notifications import public_url
from ..security import public
from .auth import home_for, safe_next

bp = Blueprint("oidc", __name__, url_prefix="/login/oidc")

_NEXT = "oidc_next"


@bp.app_context_processor
def sign_in_options():
    return {
        "oidc_enabled": oidc.enabled(),
        "password_login": current_app.config.get("PASSWORD_LOGIN", True),
    }


def _refuse(message: str, status: int = 403):
    return render_template("auth/oidc_refused.html", message=message), status


def _callback_url() -> str:
    """The redirect URI registered with the provider: under PUBLIC_BASE_URL (which carries
    any URL prefix), as email links are; else the address this request came to."""
    if current_app.config.get("PUBLIC_BASE_URL"):
        return public_url("oidc.callback")
    return url_for("oidc.callback", _external=True)


@bp.route("")
@public
def start():
    """Off to the organisation's provider (PKCE, state and nonce remembered in the session)."""
    if not oidc.enabled():
        abort(404)
    target = safe_next(request.args.get("next"))
    if target:
        session[_NEXT] = target
    else:
        session.pop(_NEXT, None)
    try:
        return oidc.client().authorize_redirect(_callback_url(), nonce=secrets.token_urlsafe(24))
    except (AuthlibBaseError, RequestException, ValueError):
        current_app.logger.exception("OpenID Connect discovery failed")
        return _refuse("The organisation's sign-in is not reachable right now. Try again.", 502)


@bp.route("/callback")
@public
def callback():
    """Back from the provider: verify the ID token, then sign the matching user in."""
    if not oidc.enabled():
        abort(404)
    try:
        options = oidc.claims_options()
        token = oidc.client().authorize_access_token(claims_options=options)
    except (AuthlibBaseError, JoseError, RequestException, ValueError, KeyError) as error:
        # A forged, replayed or mismatched answer: the reason goes to the log, not the page.
        current_app.logger.warning("OpenID Connect sign-in refused: %r", error)
        return _refuse("The sign-in could not be verified. Please start again.", 400)
    claims = token.get("userinfo")
    if not claims:
        current_app.logger.warning("OpenID Connect sign-in refused: no ID token")
        return _refuse("The sign-in could not be verified. Please start again.", 400)
    try:
        user = oidc.user_for(dict(claims))
    except oidc.SignInRefused as refused:
        return _refuse(refused.message)
    target = session.pop(_NEXT, None)
    start_session(user)
    db.session.commit()
    return redirect(target or home_for(user), code=303)
