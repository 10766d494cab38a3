"""Admin area: courses."""

from flask import Blueprint

bp = Blueprint("courses", __name__, url_prefix="/admin/courses")
