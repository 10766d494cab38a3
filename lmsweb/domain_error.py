"""The one exception the domain raises when a rule is broken."""

from __future__ import annotations


class DomainError(Exception):
    """A rule was broken; the message is shown to the administrator as it is."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
