"""`PORT=N make run`: the printed sign-in address and the links in emails use that port."""

from __future__ import annotations

import mailbox as mailbox_module
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read_until(process, pattern: str, lines: list[str], limit: float = 120.0) -> re.Match:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"{pattern!r} never printed:\n{''.join(lines)}")


def test_make_run_on_another_port_prints_the_address_and_mails_links_to_it(page, tmp_path):
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PUBLIC_BASE_URL", "MAIL_SERVER", "URL_PREFIX", "FLASK_RUN_PORT")
    }
    env.update(
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{tmp_path / 'run.sqlite3'}",
        LMSWEB_INSTANCE=str(tmp_path / "instance"),
        PYTHONUNBUFFERED="1",
    )
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        base = f"http://127.0.0.1:{port}"
        _read_until(process, re.escape(f"Sign in at {base}/login"), lines)
        password = _read_until(process, r"password:\s+(\S+)", lines).group(1)
        _read_until(process, re.escape(f"lmsweb on {base}/"), lines)
        for _ in range(100):  # the banner comes just before the socket is bound
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)

        page.goto(f"{base}/login")
        page.get_by_label("Email").fill("admin@example.com")
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{base}/admin/users?status=active")
        rows = page.locator("tr[id^=user-]").filter(has_not_text="admin@example.com")
        rows.get_by_role("button", name=re.compile("^(Resend|Notify) ")).first.click()
        expect(page.locator("#toasts")).to_contain_text("nvitation")

        # The worker `make run` starts also mails the demo's scheduled notices: every message
        # must link to this address, and the invitation must be among them.
        mailbox = tmp_path / "instance" / "dev-mailbox.mbox"
        invitations: list[str] = []
        texts: list[str] = []
        for _ in range(100):  # the worker writes it within a poll or two
            if mailbox.exists() and mailbox.stat().st_size:
                box = mailbox_module.mbox(mailbox)
                try:
                    texts = [_text(message) for message in box]
                    invitations = [
                        text
                        for message, text in zip(box, texts, strict=True)
                        if str(message["Subject"]).endswith("your training account")
                    ]
                finally:
                    box.close()
                if invitations:
                    break
            time.sleep(0.2)
        assert invitations, "no invitation in the dev mailbox"
        # An invitation to activate, or to sign in for a user who already did.
        assert re.search(re.escape(base) + r"/(activate/\S+|login)\b", invitations[0])
        assert not [t for t in texts if "127.0.0.1:5000" in t]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
        process.stdout.close()


def _text(message) -> str:
    return next(
        part.get_payload(decode=True).decode()
        for part in message.walk()
        if part.get_content_type() == "text/plain"
    )
