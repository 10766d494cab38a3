"""Responses are gzip-compressed when the client accepts it, and only whole text bodies."""

from __future__ import annotations

import gzip

from tests.conftest import HX

GZIP = {"Accept-Encoding": "gzip, deflate, br"}


def test_list_partial_and_page_are_gzipped_when_accepted(admin_client, make):
    for n in range(60):
        make.user(first_name=f"Zip{n}", last_name="Member", email=f"zip{n}@example.com")
    for headers in (HX, {}):
        plain = admin_client.get("/admin/users", headers=headers)
        assert "Content-Encoding" not in plain.headers
        assert "Accept-Encoding" in plain.headers["Vary"]
        zipped = admin_client.get("/admin/users", headers={**headers, **GZIP})
        assert zipped.status_code == 200
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in zipped.headers["Vary"]
        assert "HX-Request" in zipped.headers["Vary"]
        body = gzip.decompress(zipped.data)
        # The same page but for the per-request CSRF token and nonce.
        assert body.count(b'<tr id="user-') == plain.data.count(b'<tr id="user-') == 50
        assert len(zipped.data) * 4 < len(body)
        assert int(zipped.headers["Content-Length"]) == len(zipped.data)


def test_refused_or_unknown_codings_get_the_plain_body(admin_client):
    for accept in ("gzip;q=0", "br", "identity", "deflate"):
        response = admin_client.get("/admin/users", headers={"Accept-Encoding": accept})
        assert response.status_code == 200
        assert "Content-Encoding" not in response.headers, accept
        assert b"<h1>Users</h1>" in response.data


def test_downloads_files_and_small_answers_pass_through(admin_client):
    export = admin_client.get("/admin/users/export.xlsx", headers=GZIP)
    assert export.status_code == 200
    assert "Content-Encoding" not in export.headers
    assert export.data[:2] == b"PK"  # the xlsx zip itself
    static = admin_client.get("/static/icons.svg", headers=GZIP)
    assert static.status_code == 200 and "Content-Encoding" not in static.headers
    static.close()
    redirect = admin_client.get("/", headers=GZIP)
    assert 300 <= redirect.status_code < 400 and len(redirect.data) < 1024
    assert "Content-Encoding" not in redirect.headers
