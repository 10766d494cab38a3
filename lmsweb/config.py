"""Settings from environment variables, with safe defaults.

Every setting the README documents is read here and nowhere else.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError as exc:
        raise RuntimeError(f"{name} must be a whole number, got {value!r}") from exc


def _list(name: str) -> list[str]:
    return [item for item in os.environ.get(name, "").replace(",", " ").split() if item]


def normalise_prefix(value: str) -> str:
    """`training/`, `/training` and `/training/` all mean the sub-path `/training`."""
    value = value.strip().strip("/")
    return "/" + value if value else ""


def load_secret_key(instance_path: str) -> str:
    """SECRET_KEY from the environment, else one generated once into instance/."""
    key = os.environ.get("SECRET_KEY", "").strip()
    if key:
        return key
    path = Path(instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # Created with 0600 so the key is readable by the service account only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def normalise_database_url(url: str) -> str:
    """Accept the common `postgres://` and `postgresql://` spellings; use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def engine_options(database_url: str) -> dict:
    """SQLAlchemy's engine options. On PostgreSQL the statements marked to be prepared
    (lmsweb.database.PREPARED) are prepared on the server; DATABASE_PREPARED_STATEMENTS=0
    prepares none (a PgBouncer in transaction pooling mode before 1.21 hands each
    transaction any server connection, where a statement prepared on another is unknown)."""
    options: dict = {"pool_pre_ping": True}
    if database_url.startswith("postgres") and not _bool("DATABASE_PREPARED_STATEMENTS", True):
        options["connect_args"] = {"prepare_threshold": None}
    return options


def from_environment(instance_path: str) -> dict:
    """The configuration mapping for `app.config`."""
    database_url = os.environ.get("DATABASE_URL", "").strip() or (
        "sqlite:///" + str(Path(instance_path) / "lmsweb.sqlite3")
    )
    cross_site = _bool("CROSS_SITE_COOKIES")
    secure_cookies = _bool("SECURE_COOKIES", default=cross_site)
    trusted_header = os.environ.get("TRUSTED_HEADER_NAME", "").strip() or "X-Remote-User"
    return {
        "SECRET_KEY": load_secret_key(instance_path),
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(database_url),
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(database_url),
        "ORG_NAME": os.environ.get("ORG_NAME", "Example Organisation"),
        "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL", "").strip().rstrip("/"),
        # Mail: with no MAIL_SERVER the outbox worker writes messages to the log.
        "MAIL_SERVER": os.environ.get("MAIL_SERVER", "").strip() or None,
        "MAIL_PORT": _int("MAIL_PORT", 25),
        "MAIL_USE_TLS": _bool("MAIL_USE_TLS"),
        "MAIL_USE_SSL": _bool("MAIL_USE_SSL"),
        "MAIL_USERNAME": os.environ.get("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": os.environ.get("MAIL_PASSWORD") or None,
        "MAIL_DEFAULT_SENDER": os.environ.get("MAIL_DEFAULT_SENDER", "lmsweb@localhost"),
        "MAIL_MAX_ATTEMPTS": _int("MAIL_MAX_ATTEMPTS", 5),
        # First retry after this many seconds, then doubling (capped at 6 hours).
        "MAIL_RETRY_BASE_SECONDS": _int("MAIL_RETRY_BASE_SECONDS", 60),
        "MAIL_TIMEOUT": _int("MAIL_TIMEOUT", 30),
        "ACTIVATION_MAX_AGE_DAYS": _int("ACTIVATION_MAX_AGE_DAYS", 7),
        # Embedding in portals.
        "FRAME_ANCESTORS": _list("FRAME_ANCESTORS"),
        "CROSS_SITE_COOKIES": cross_site,
        "EMBED_MODE": _bool("EMBED_MODE"),
        "PROXY_COUNT": _int("PROXY_COUNT", 0),
        "URL_PREFIX": normalise_prefix(os.environ.get("URL_PREFIX", "")),
        # Portal sign-in: a header set by a trusted reverse proxy names the user (by email).
        "TRUSTED_HEADER_AUTH": _bool("TRUSTED_HEADER_AUTH"),
        "TRUSTED_HEADER_NAME": trusted_header,
        "TRUSTED_PROXIES": _list("TRUSTED_PROXIES"),
        "TRUSTED_HEADER_CREATE_USERS": _bool("TRUSTED_HEADER_CREATE_USERS"),
        # SCIM provisioning: are provisioned users approved (and invited) at once, or
        # pending until an administrator approves them? And each token's request budget.
        "SCIM_APPROVE_USERS": _bool("SCIM_APPROVE_USERS"),
        "SCIM_RATE_LIMIT": os.environ.get("SCIM_RATE_LIMIT", "").strip() or "1200 per minute",
        # OpenID Connect sign-in (off unless OIDC_ISSUER is set); unknown users are refused,
        # or with OIDC_CREATE_USERS created as pending learners. PASSWORD_LOGIN=0 leaves
        # only the organisation's sign-in.
        "OIDC_ISSUER": os.environ.get("OIDC_ISSUER", "").strip().rstrip("/"),
        "OIDC_CLIENT_ID": os.environ.get("OIDC_CLIENT_ID", "").strip(),
        "OIDC_CLIENT_SECRET": os.environ.get("OIDC_CLIENT_SECRET", "").strip(),
        "OIDC_CREATE_USERS": _bool("OIDC_CREATE_USERS"),
        # Entra ID sends no email_verified claim: with OIDC_TRUST_EMAIL the email of an ID
        # token without that claim is trusted for matching (off: such sign-ins are refused).
        "OIDC_TRUST_EMAIL": _bool("OIDC_TRUST_EMAIL"),
        "PASSWORD_LOGIN": _bool("PASSWORD_LOGIN", default=True),
        # Sign-in throttling (Flask-Limiter); share the storage between processes in
        # production, e.g. redis://host:6379 or memcached://host:11211.
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI", "").strip() or "memory://",
        "LOGIN_ATTEMPTS": os.environ.get("LOGIN_ATTEMPTS", "").strip() or "5 per 15 minutes",
        "LOGIN_ATTEMPTS_PER_ADDRESS": os.environ.get("LOGIN_ATTEMPTS_PER_ADDRESS", "").strip()
        or "30 per 15 minutes",
        # Sessions and cookies.
        "SESSION_COOKIE_NAME": "lmsweb_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SECURE": secure_cookies,
        "SESSION_COOKIE_SAMESITE": "None" if cross_site else "Lax",
        # CHIPS: with cross-site cookies, keep the cookie per top-level site (the portal)
        # where browsers support it; PARTITIONED_COOKIES=0 turns that off.
        "PARTITIONED_COOKIES": _bool("PARTITIONED_COOKIES", default=True),
        "REMEMBER_COOKIE_SECURE": secure_cookies,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "PERMANENT_SESSION_LIFETIME": timedelta(minutes=_int("SESSION_MAX_AGE_MINUTES", 720)),
        "SESSION_IDLE_MINUTES": _int("SESSION_IDLE_MINUTES", 60),
        # The cookie is written when the session changes (the idle clock: once a minute,
        # auth_session.SEEN_EVERY), not signed again on every request.
        "SESSION_REFRESH_EACH_REQUEST": False,
        # Uploads.
        "MAX_CONTENT_LENGTH": _int("MAX_UPLOAD_MB", 10) * 1024 * 1024,
        "IMPORT_MAX_ROWS": _int("IMPORT_MAX_ROWS", 100_000),
        # Read bounds of an import (lmsweb/sheet_reader.py): checked while the file is read,
        # so a crafted workbook is refused before it can take memory or time.
        "IMPORT_MAX_COLUMNS": _int("IMPORT_MAX_COLUMNS", 50),
        "IMPORT_MAX_CELL_CHARS": _int("IMPORT_MAX_CELL_CHARS", 1000),
        "IMPORT_MAX_SHARED_STRINGS": _int("IMPORT_MAX_SHARED_STRINGS", 1_000_000),
        "IMPORT_MAX_UNCOMPRESSED_MB": _int("IMPORT_MAX_UNCOMPRESSED_MB", 100),
        # Exports: Export Users writes its records sheet in a process of its own (a fork)
        # beside the users sheet (lmsweb/xlsx.py); 0 writes both here, one after the other.
        "EXPORT_SHEET_PROCESSES": _bool("EXPORT_SHEET_PROCESSES", default=True),
        "WTF_CSRF_TIME_LIMIT": None,
        "WTF_CSRF_SSL_STRICT": False,
    }


def apply_cross_site(config) -> None:
    """Cross-site embedding needs `SameSite=None`, which browsers accept only with `Secure`."""
    if config.get("CROSS_SITE_COOKIES"):
        config["SESSION_COOKIE_SAMESITE"] = "None"
        config["SESSION_COOKIE_SECURE"] = True
        config["REMEMBER_COOKIE_SECURE"] = True
        config["SESSION_COOKIE_PARTITIONED"] = bool(config.get("PARTITIONED_COOKIES", True))
