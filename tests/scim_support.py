"""SCIM test helpers: a token made through the domain, and a live server on loopback."""

from __future__ import annotations

import threading
from contextlib import contextmanager

from werkzeug.serving import make_server

from lmsweb import scim_tokens, scope
from lmsweb.extensions import db

SCIM = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def make_token(app, name: str = "Directory") -> str:
    with app.app_context():
        _, token = scim_tokens.create(name, None)
        db.session.commit()
    return token


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": SCIM, "Accept": SCIM}


def scim_caller(client, token: str):
    """`scim(method, path, body=None)`: a request of the test `client` with `token`, which
    must succeed."""

    def scim(method, path, body=None):
        response = client.open(f"/scim/v2{path}", method=method, json=body, headers=headers(token))
        assert response.status_code < 300, response.text
        return response

    return scim


@contextmanager
def serving(app):
    """The app on a free loopback port in a thread, for clients that speak real HTTP."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def make_scoped_token(app, name: str, locations: list[str], groups: list[str]) -> str:
    """A token scoped to the locations and groups so named (they must exist)."""
    with app.app_context():
        found_locations, found_groups = scope.by_names(locations, groups)
        _, token = scim_tokens.create(name, None, found_locations, found_groups)
        db.session.commit()
    return token
