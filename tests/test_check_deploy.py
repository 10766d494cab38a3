"""`flask lms check-deploy` passes a sound production configuration and fails each bad one."""

from __future__ import annotations

import pytest

GOOD = {
    "TESTING": False,
    "SECRET_KEY": "k" * 20 + "9f3b2c71d0e84a6b5c",
    "PUBLIC_BASE_URL": "https://training.example.org",
    "SESSION_COOKIE_SECURE": True,
    "RATELIMIT_STORAGE_URI": "memory://",
}


def _run(app):
    result = app.test_cli_runner().invoke(args=["lms", "check-deploy"])
    return result.exit_code, result.output


@pytest.fixture
def app_config():
    return GOOD


def test_a_sound_configuration_passes(app):
    code, output = _run(app)
    assert code == 0, output
    assert "Deployment settings look right." in output
    assert "WARNING RATELIMIT_STORAGE_URI is memory://" in output


def test_debug_mode_fails(app, monkeypatch):
    monkeypatch.setenv("FLASK_DEBUG", "1")  # how `flask` switches debug on
    code, output = _run(app)
    assert code == 1 and "FAIL debug mode is on" in output


@pytest.mark.parametrize("app_config", [{**GOOD, "URL_PREFIX": "/training"}])
def test_passes_under_a_url_prefix(app):
    code, output = _run(app)
    assert code == 0, output


BAD = {
    "no secret key": ({"SECRET_KEY": ""}, "SECRET_KEY is not set"),
    "default secret key": (
        {"SECRET_KEY": "test-secret-key-not-for-production"},
        "SECRET_KEY is a default",
    ),
    "short secret key": ({"SECRET_KEY": "s3cr3t-but-short"}, "SECRET_KEY is a default"),
    "no public url": ({"PUBLIC_BASE_URL": ""}, "PUBLIC_BASE_URL is not set"),
    "insecure cookies behind https": (
        {"SESSION_COOKIE_SECURE": False},
        "session cookies are not Secure",
    ),
    "cookies readable by scripts": (
        {"SESSION_COOKIE_HTTPONLY": False},
        "session cookies are not HttpOnly",
    ),
    "wildcard frame ancestors": (
        {"FRAME_ANCESTORS": ["https://*"]},
        "FRAME_ANCESTORS contains a wildcard",
    ),
    "trusted header without proxies": (
        {"TRUSTED_HEADER_AUTH": True, "TRUSTED_PROXIES": []},
        "TRUSTED_HEADER_AUTH is on but TRUSTED_PROXIES is empty",
    ),
}


@pytest.mark.parametrize("change,message", BAD.values(), ids=BAD.keys())
def test_each_bad_setting_fails(app, change, message):
    app.config.update(change)
    code, output = _run(app)
    assert code == 1
    assert f"FAIL {message}" in output


@pytest.mark.parametrize("app_config", [{**GOOD, "CROSS_SITE_COOKIES": True}])
def test_cross_site_embedding_with_insecure_cookies_fails(app):
    assert _run(app)[0] == 0
    app.config["SESSION_COOKIE_SECURE"] = False
    code, output = _run(app)
    assert code == 1 and "CROSS_SITE_COOKIES needs session cookies SameSite=None; Secure" in output
    app.config.update(SESSION_COOKIE_SECURE=True, SESSION_COOKIE_SAMESITE="Lax")
    assert _run(app)[0] == 1


@pytest.mark.parametrize(
    "policy,message",
    [
        ("default-src 'self'; object-src 'none'", "has no frame-ancestors"),
        ("default-src 'self'; frame-ancestors 'self'", "lacks object-src 'none'"),
        ("default-src 'self'; object-src 'self'; frame-ancestors 'self'", "lacks object-src"),
    ],
)
def test_a_weakened_content_security_policy_fails(app, policy, message):
    """The check reads the policy the app really sends, whatever sets it."""

    @app.after_request
    def weaken(response):
        response.headers["Content-Security-Policy"] = policy
        return response

    code, output = _run(app)
    assert code == 1 and message in output


WORKERS = {
    "command-line option": ({}, ["--workers", "3"], 3),
    "GUNICORN_CMD_ARGS": ({"GUNICORN_CMD_ARGS": "--bind 127.0.0.1:8000 --workers 4"}, [], 4),
    "GUNICORN_CMD_ARGS, short form": ({"GUNICORN_CMD_ARGS": "-w5 app:app"}, [], 5),
    "WEB_CONCURRENCY": ({"WEB_CONCURRENCY": "2"}, [], 2),
}


@pytest.mark.parametrize("environ,args,workers", WORKERS.values(), ids=WORKERS.keys())
def test_several_workers_with_memory_throttling_warn(app, monkeypatch, environ, args, workers):
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    result = app.test_cli_runner().invoke(args=["lms", "check-deploy", *args])
    assert result.exit_code == 0, result.output
    assert (
        f"WARNING gunicorn runs {workers} workers and RATELIMIT_STORAGE_URI is memory://: "
        f"each worker counts sign-in attempts alone, so the real limit is {workers} times "
        "LOGIN_ATTEMPTS; share the counts with RATELIMIT_STORAGE_URI=redis://host:6379"
    ) in result.output


def test_one_worker_gets_only_the_general_memory_warning(app, monkeypatch):
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    code, output = _run(app)
    assert code == 0, output
    assert "WARNING RATELIMIT_STORAGE_URI is memory://" in output
    assert "gunicorn runs" not in output


@pytest.mark.parametrize(
    "app_config", [{**GOOD, "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379"}]
)
def test_shared_throttling_storage_does_not_warn_with_several_workers(app, monkeypatch):
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--workers 4")
    code, output = _run(app)
    assert code == 0, output
    assert "RATELIMIT_STORAGE_URI" not in output and "WARNING" not in output
