"""Roster import: read a spreadsheet safely, preview what it would do, apply it at once.

`reading` turns an upload into a Table; `planning` decides, row by row, what the import
would do; `applying` re-plans inside the transaction and writes; `jobs` holds an upload as
an ImportJob and runs preview and apply, here or in a background thread.
"""

from .applying import apply
from .jobs import (
    BACKGROUND_ROWS,
    error_rows,
    new_job,
    preview_job,
    start_background,
    wait_for,
)
from .planning import Plan, plan_import
from .reading import (
    EXTENSIONS,
    MAX_ZIP_MEMBERS,
    TEMPLATE_HEADERS,
    ImportFileError,
    Table,
    cell_text,
    read_table,
    sniff_delimiter,
)

__all__ = [
    "BACKGROUND_ROWS",
    "EXTENSIONS",
    "MAX_ZIP_MEMBERS",
    "TEMPLATE_HEADERS",
    "ImportFileError",
    "Plan",
    "Table",
    "apply",
    "cell_text",
    "error_rows",
    "new_job",
    "plan_import",
    "preview_job",
    "read_table",
    "sniff_delimiter",
    "start_background",
    "wait_for",
]
