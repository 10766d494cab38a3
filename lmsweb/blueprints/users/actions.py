"""Users: actions (routes are registered on the shared blueprint)."""

from . import bp  # noqa: F401
