"""Directories retry and run several workers: the same people POSTed by several client
processes at once are created once each; the others get 409, never a 500."""

from __future__ import annotations

import json
import subprocess
import sys

from lmsweb.models import User
from tests.conftest import count
from tests.scim_support import USER_SCHEMA, make_token, serving

PEOPLE = 12
CLIENTS = 4

CLIENT = """
import http.client, json, sys
port, token, bodies = int(sys.argv[1]), sys.argv[2], json.loads(sys.stdin.read())
statuses = []
for body in bodies:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/scim/v2/Users", json.dumps(body),
                 {"Authorization": "Bearer " + token, "Content-Type": "application/scim+json"})
    statuses.append(conn.getresponse().status)
    conn.close()
print(json.dumps(statuses))
"""


def test_the_same_people_posted_concurrently_are_created_once(app):
    token = make_token(app)
    bodies = [
        {
            "schemas": [USER_SCHEMA],
            "userName": f"race{n}@example.com",
            "externalId": f"R{n}",
            "emails": [{"value": f"race{n}@example.com"}],
        }
        for n in range(PEOPLE)
    ]
    with serving(app) as base:
        port = base.rsplit(":", 1)[1]
        clients = [
            subprocess.Popen(
                [sys.executable, "-c", CLIENT, port, token],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(CLIENTS)
        ]
        for client in clients:
            client.stdin.write(json.dumps(bodies))
            client.stdin.close()
        results = [json.loads(client.stdout.read()) for client in clients]
        for client in clients:
            client.stdout.close()
            assert client.wait(timeout=120) == 0
    per_person = list(zip(*results, strict=True))
    assert all(sorted(statuses) == [201] + [409] * (CLIENTS - 1) for statuses in per_person), (
        per_person
    )
    assert count(app, User) == PEOPLE
