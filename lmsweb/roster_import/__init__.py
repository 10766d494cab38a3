"""Roster import: read a spreadsheet safely, preview what it would do, apply it at once.

`reading` turns an upload into a Table; `planning` decides, row by row, what the import
would do, and checks at the commit that the database has not changed under the preview;
`applying` writes the plan through `bulk` (many rows per statement); `jobs` holds an upload
as an ImportJob whose preview and apply run here or, for a large file, in the worker
(lmsweb/import_jobs.py).
"""

from .applying import apply
from .jobs import (
    BACKGROUND_ROWS,
    error_rows,
    error_texts,
    new_job,
    preview_job,
    preview_view,
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
    "error_texts",
    "new_job",
    "plan_import",
    "preview_job",
    "preview_view",
    "read_table",
    "sniff_delimiter",
]
