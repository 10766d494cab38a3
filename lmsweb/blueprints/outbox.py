"""Admin area: outbox."""

from flask import Blueprint

bp = Blueprint("outbox", __name__, url_prefix="/admin/outbox")
