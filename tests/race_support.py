"""Racing requests from separate processes: each worker is its own Python process with its
own app, engine and connections, so nothing in one interpreter (the GIL, a shared pool, the
identity map) can serialise the race for us. A barrier releases the workers together."""

from __future__ import annotations

import multiprocessing
import queue
from dataclasses import dataclass

# A worker waits this long for its partners at the barrier, the parent this long for a
# worker's answer: generous, because the machine may be loaded; they only bound a hang.
BARRIER_TIMEOUT = 60
ANSWER_TIMEOUT = 120


@dataclass(frozen=True)
class Request:
    """One POST: by whom (a signed-in session cookie and its CSRF token), where, what."""

    cookie: str
    csrf: str
    url: str
    data: dict

    @classmethod
    def by(cls, app, client, url: str, **data) -> Request:
        """A POST to `url` as the user signed in on the test `client`."""
        cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
        return cls(cookie=cookie.value, csrf=client.csrf_token, url=url, data=data)


def _serve(config: dict, inbox, outbox, barrier) -> None:
    """A worker: one app per database (a test's fresh database), POSTs on the parent's cue."""
    from lmsweb import create_app
    from lmsweb.extensions import db

    apps: dict[str, object] = {}
    outbox.put("ready")
    while True:
        task = inbox.get()
        if task is None:
            return
        database_url, request = task
        app = apps.get(database_url)
        if app is None:
            for old in apps.values():
                with old.app_context():
                    db.engine.dispose()
            apps = {database_url: create_app({**config, "SQLALCHEMY_DATABASE_URI": database_url})}
            app = apps[database_url]
        client = app.test_client()
        client.set_cookie(app.config["SESSION_COOKIE_NAME"], request.cookie)
        headers = {"HX-Request": "true", "X-CSRFToken": request.csrf}
        try:
            barrier.wait(BARRIER_TIMEOUT)
            response = client.post(request.url, data=request.data, headers=headers)
            outbox.put((response.status_code, response.get_data(as_text=True)[:500]))
        except Exception as exc:  # reported to the parent, which fails the test with it
            outbox.put((599, repr(exc)))


class Racers:
    """n worker processes; `race(database_url, requests)` sends request i to worker i,
    releases them together and returns their (status, text) answers in order."""

    def __init__(self, n: int, config: dict):
        ctx = multiprocessing.get_context("spawn")
        self.barrier = ctx.Barrier(n)
        self.inboxes = [ctx.Queue() for _ in range(n)]
        self.outboxes = [ctx.Queue() for _ in range(n)]
        self.processes = [
            ctx.Process(
                target=_serve,
                args=(config, self.inboxes[i], self.outboxes[i], self.barrier),
                daemon=True,
            )
            for i in range(n)
        ]
        for process in self.processes:
            process.start()
        for outbox in self.outboxes:
            assert outbox.get(timeout=ANSWER_TIMEOUT) == "ready"

    def race(self, database_url: str, requests: list[Request]) -> list[tuple[int, str]]:
        assert len(requests) == len(self.processes)
        for inbox, request in zip(self.inboxes, requests, strict=True):
            inbox.put((database_url, request))
        answers = []
        for outbox in self.outboxes:
            try:
                answers.append(outbox.get(timeout=ANSWER_TIMEOUT))
            except queue.Empty:
                answers.append((598, "no answer from the worker"))
        return answers

    def close(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()


def assign_request(app, client, user, course) -> Request:
    """The assign of `course` to `user` from their Course Assignments dialog, as `client`'s
    administrator posts it (no due date)."""
    return Request.by(
        app,
        client,
        f"/admin/users/{user.id}/courses",
        action="assign",
        course=str(course.id),
        due_date="",
    )
