"""The one worker: `flask lms worker` runs the schedule, the background imports and the
outbox. Any number may run (on any instance): the schedule claims each occurrence with a
unique key, imports are claimed with leases, the outbox with `SKIP LOCKED` leases."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from . import figures, user_counts
from .extensions import db
from .import_jobs import run_pending
from .mailer import BatchResult, drain
from .schedule import PassResult, run_pass

log = logging.getLogger("lmsweb.worker")

# The schedule works in days: a pass a minute is plenty, the outbox is polled more often.
SCHEDULE_EVERY_SECONDS = 60.0


@dataclass
class WorkerResult:
    schedule: PassResult
    imports: int
    mail: BatchResult
    figures: int = 0  # dashboard snapshots recomputed


def run_once(now: datetime | None = None) -> WorkerResult:
    """One pass of everything due at `now` (the schedule's clock), then drain the outbox."""
    schedule = run_pass(now)
    merge_counts()
    imports = run_pending()
    mail = drain()
    return WorkerResult(schedule, imports, mail, figures.refresh_due(now))


def merge_counts() -> None:
    """The kept user counts' rows summed into one per key (PostgreSQL appends one per write)."""
    user_counts.merge()
    db.session.commit()


def run_forever(app, stop: threading.Event, interval: float = 2.0) -> None:
    """Drain the outbox every `interval` seconds; run the schedule (and merge the kept user
    counts, and recount the dashboard snapshots due) every minute."""
    last_pass = float("-inf")
    with app.app_context():
        while not stop.is_set():
            try:
                if time.monotonic() - last_pass >= SCHEDULE_EVERY_SECONDS:
                    result = run_pass()
                    last_pass = time.monotonic()
                    log.info("%s", result.summary())
                    merge_counts()
                    # After the schedule: a large organisation's dashboard snapshots.
                    if recounted := figures.refresh_due():
                        log.info("Dashboard figures recounted for %d audiences", recounted)
                run_pending()
                drain()
            except Exception:  # noqa: BLE001 - a bad moment (database busy) must not end the loop
                log.exception("Worker: pass failed; trying again shortly")
                db.session.rollback()
            finally:
                db.session.remove()
            stop.wait(interval)
