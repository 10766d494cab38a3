"""The Users page and everything done to users; one module per concern, one blueprint."""

from flask import Blueprint

bp = Blueprint("users", __name__, url_prefix="/admin/users")

# Imported for their routes, after `bp` exists.
from . import (  # noqa: E402,F401
    actions,
    admin_scope,
    archive,
    assignments,
    bulk,
    edit,
    export,
    imports,
    listing,
    menu,
    remind,
    undo,
)
