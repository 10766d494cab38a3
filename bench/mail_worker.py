"""Messages per second one outbox worker delivers to a local aiosmtpd (connection reuse).

Queues N invitations through the domain (rendered templates, real tokens), then times
`mailer.drain()` against an aiosmtpd server on loopback. A fresh SQLite file under
bench/.data/, and with TEST_DATABASE_URL set to a PostgreSQL server a fresh database there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench import _support

DATA = _support.DATA / "mail_worker"
MESSAGES = int(os.environ.get("BENCH_MAIL_MESSAGES", "2000"))


def main() -> None:
    for engine, url in _support.databases("mail_worker.sqlite3", "lmsweb_bench_mail", fresh=True):
        shutil.rmtree(DATA, ignore_errors=True)
        DATA.mkdir(parents=True)
        if engine == "sqlite":
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        print(f"\n[{engine}]")
        measure(url)


def measure(url: str) -> None:
    os.environ["LMSWEB_INSTANCE"] = str(DATA / "instance")

    from flask_migrate import upgrade
    from sqlalchemy import func, insert, select

    from lmsweb import create_app, mailer, sqlite_write_transaction
    from lmsweb.extensions import db
    from lmsweb.models import OutboundEmail, User
    from lmsweb.notifications import queue_invitation
    from tests.smtp_support import free_port, smtp_config

    # aiosmtpd in its own process, as a real server would be (no GIL shared with the worker).
    port = free_port()
    smtpd = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
         "-c", "aiosmtpd.handlers.Sink"],
    )  # fmt: skip
    for _ in range(300):  # until it listens
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    from lmsweb.config import normalise_database_url

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": normalise_database_url(url),
            "SECRET_KEY": "bench",
            "PUBLIC_BASE_URL": "http://lms.bench",
            **smtp_config(port),
        }
    )
    try:
        with app.app_context():
            upgrade()
            db.session.execute(
                insert(User),
                [
                    {"email": f"bench{i}@example.com", "first_name": "Bench", "last_name": str(i),
                     "role": "learner", "status": "active"}
                    for i in range(MESSAGES)
                ],
            )  # fmt: skip
            started = time.perf_counter()
            with sqlite_write_transaction():
                for user in db.session.scalars(select(User)):
                    queue_invitation(user)
                db.session.commit()
            queued = time.perf_counter() - started
            db.session.remove()

            started = time.perf_counter()
            result = mailer.drain()
            elapsed = time.perf_counter() - started
            sent = db.session.scalar(
                select(func.count())
                .select_from(OutboundEmail)
                .where(OutboundEmail.status == "sent")
            )
        engine = url.split(":", 1)[0]
        print(f"engine: {engine}; messages: {MESSAGES}; batch size: {mailer.BATCH_SIZE}")
        print(f"queued (render + token + insert): {queued:.2f} s ({MESSAGES / queued:.0f}/s)")
        print(
            f"delivered: {result.sent} sent, {result.failed} failed in {elapsed:.2f} s "
            f"= {result.sent / elapsed:.0f} messages/s by one worker (goal >= 200/s)"
        )
        print(f"marked sent in the outbox: {sent}; SMTP connections: one per batch of 100")
    finally:
        smtpd.terminate()
        smtpd.wait(30)
        with app.app_context():
            db.engine.dispose()


if __name__ == "__main__":
    main()
