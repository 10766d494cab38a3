"""OpenID Connect sign-in with the organisation's provider, through Authlib.

Discovery from OIDC_ISSUER; authorization code flow with PKCE (S256), state and nonce;
Authlib verifies the ID token's signature against the provider's JWKS, its issuer,
audience (our client ID), nonce and expiry. A person is matched by their *verified* email:
`email_verified: true`, or, with OIDC_TRUST_EMAIL, any `email` of a token that carries no
`email_verified` claim at all (Entra ID sends none). `email_verified: false` is always refused.
"""

from __future__ import annotations

from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app
from sqlalchemy import func, select

from . import audit
from .extensions import db
from .licensing import DomainError
from .models import User
from .scim_provision import after_join

CLIENT = "organisation"
_KEY = "lmsweb_oidc"


def enabled(app: Flask | None = None) -> bool:
    config = (app or current_app).config
    return bool(config.get("OIDC_ISSUER") and config.get("OIDC_CLIENT_ID"))


def init_app(app: Flask) -> None:
    if not enabled(app):
        return
    # One registry per app: Authlib's caches the provider's metadata and keys per client.
    oauth = OAuth(app)
    app.extensions[_KEY] = oauth
    oauth.register(
        CLIENT,
        client_id=app.config["OIDC_CLIENT_ID"],
        client_secret=app.config.get("OIDC_CLIENT_SECRET") or None,
        server_metadata_url=app.config["OIDC_ISSUER"] + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
    )


def claims_options() -> dict:
    """Checked on every ID token besides signature, nonce and expiry: Authlib checks the
    audience only when told to."""
    issuer = client().load_server_metadata()["issuer"]
    return {
        "iss": {"essential": True, "values": [issuer]},
        "aud": {"essential": True, "values": [current_app.config["OIDC_CLIENT_ID"]]},
    }


def client():
    return current_app.extensions[_KEY].create_client(CLIENT)


class SignInRefused(DomainError):
    """The provider vouched for someone we will not sign in; the message says why."""


def _create_pending(email: str, claims: dict) -> User:
    local = email.split("@", 1)[0]
    user = User(
        email=email,
        first_name=str(claims.get("given_name") or local)[:100],
        last_name=str(claims.get("family_name") or "")[:100],
        role="learner",
        status="pending",
    )
    db.session.add(user)
    db.session.flush()
    audit.record(
        "user.oidc_request",
        target=user,
        actor=user,
        summary=f"{email} signed in with the organisation's account and awaits approval",
    )
    after_join(user)
    return user


def verified_email(claims: dict) -> str:
    """The ID token's email, when the provider vouches for it; SignInRefused otherwise.

    Entra ID never sends `email_verified`: its `email` is whatever the tenant recorded. An
    organisation whose provider only holds addresses it controls says so with
    OIDC_TRUST_EMAIL=1; then a token without the claim is taken at its word. A provider that
    says `email_verified: false` is believed either way."""
    email = str(claims.get("email") or "").strip().lower()
    if not email:
        raise SignInRefused(
            "Your organisation's account did not give an email address, "
            "so we cannot tell which training account is yours."
        )
    verified = claims.get("email_verified")
    if verified is True:
        return email
    if verified is None:
        if current_app.config.get("OIDC_TRUST_EMAIL"):
            return email
        raise SignInRefused(
            "Your organisation's sign-in did not say whether your email address is verified "
            "(Microsoft Entra ID never does), so we cannot tell which training account is "
            "yours. An administrator can set OIDC_TRUST_EMAIL=1 to accept the addresses "
            "this provider gives."
        )
    raise SignInRefused(
        "Your organisation's account did not give a verified email address, "
        "so we cannot tell which training account is yours."
    )


def user_for(claims: dict) -> User:
    """The active user the verified ID token names; SignInRefused otherwise."""
    email = verified_email(claims)
    user = db.session.scalar(select(User).where(func.lower(User.email) == email))
    if user is None:
        if current_app.config.get("OIDC_CREATE_USERS"):
            _create_pending(email, claims)
            db.session.commit()
            raise SignInRefused(
                "Your training account has been requested; an administrator will approve it."
            )
        raise SignInRefused("There is no training account for you yet. Ask your administrator.")
    if user.status == "pending":
        raise SignInRefused("Your training account awaits approval by an administrator.")
    if user.status != "active":
        raise SignInRefused("Your training account is not active. Ask your administrator.")
    return user
