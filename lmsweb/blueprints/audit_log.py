"""Admin area: audit_log."""

from flask import Blueprint

bp = Blueprint("audit_log", __name__, url_prefix="/admin/audit")
