"""Sign-in throttling per account and per address, with Flask-Limiter's storage.

One limiter per app (so two apps, e.g. tests, never share counters); its storage comes
from RATELIMIT_STORAGE_URI, so several processes can share one (redis://, memcached://).
Only failed attempts count; a successful sign-in clears the account's counter.
"""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_limiter import Limiter
from limits import parse

_KEY = "lmsweb_login_limiter"


def client_address() -> str:
    """The client's address (ProxyFix has already applied PROXY_COUNT)."""
    return request.remote_addr or "unknown"


def init_app(app: Flask) -> None:
    # No default limits: only the sign-in is limited, explicitly, in the view.
    limiter = Limiter(client_address, storage_uri=app.config["RATELIMIT_STORAGE_URI"])
    limiter.init_app(app)
    app.extensions[_KEY] = limiter


def _checks(email: str):
    config = current_app.config
    limiter: Limiter = current_app.extensions[_KEY]
    account = email.strip().lower()
    return limiter.limiter, [
        (parse(config["LOGIN_ATTEMPTS"]), ("login-account", account)),
        (parse(config["LOGIN_ATTEMPTS_PER_ADDRESS"]), ("login-address", client_address())),
    ]


def login_blocked(email: str) -> bool:
    """True when this account or this address has used up its failed attempts."""
    strategy, checks = _checks(email)
    return any(not strategy.test(limit, *keys) for limit, keys in checks)


def login_failed(email: str) -> None:
    """Count a failed attempt against the account and the address."""
    strategy, checks = _checks(email)
    for limit, keys in checks:
        strategy.hit(limit, *keys)


def login_succeeded(email: str) -> None:
    """The account's owner got in: forget the account's failures (not the address's)."""
    strategy, checks = _checks(email)
    limit, keys = checks[0]
    strategy.clear(limit, *keys)


def spend(limit: str, *keys: str) -> bool:
    """Count one request against `limit` for `keys`; False once the budget is spent."""
    limiter: Limiter = current_app.extensions[_KEY]
    return limiter.limiter.hit(parse(limit), *keys)
