"""A real SMTP server (aiosmtpd) on a free loopback port, and helpers to read what it got."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
from email.message import Message

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sink:
    """Collects every message delivered to it; one SMTP conversation per connection."""

    def __init__(self):
        self.raw: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.connections = 0
        self._lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        with self._lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        with self._lock:
            # Parsed when read (`messages`), so the server answers as fast as a real one.
            self.raw.append(envelope.original_content)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[Message]:
        with self._lock:
            raw = list(self.raw)
        return [email.message_from_bytes(r, policy=email.policy.default) for r in raw]


class SMTPServer:
    """Start, stop and restart the server on the same port (SMTP down, then back)."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.sink = Sink()
        self._controller: Controller | None = None

    def start(self) -> SMTPServer:
        self._controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[Message]:
        return self.sink.messages

    def config(self) -> dict:
        """App configuration that sends through this server."""
        return smtp_config(self.port)


def smtp_config(port: int) -> dict:
    """App configuration that sends through a server on this loopback port."""
    return {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": port,
        "MAIL_SUPPRESS_SEND": False,
        "MAIL_DEFAULT_SENDER": "Test Org <lms@example.org>",
        "MAIL_TIMEOUT": 5,
    }


@pytest.fixture
def smtp_server():
    server = SMTPServer().start()
    yield server
    server.stop()


def text_body(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text/plain part")


def html_body(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/html":
            return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text/html part")


def link_in(message: Message) -> str:
    """The activation/reset link of a message, from its text body."""
    match = re.search(r"https?://\S+", text_body(message))
    assert match, "the message carries a link"
    return match.group(0)
