"""Users: import a roster from Excel or CSV — upload, preview, confirm, follow the job."""

from __future__ import annotations

import io

from flask import abort, current_app, request, send_file, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import load_only
from wtforms import BooleanField

from ... import roster_import
from ...domain_error import DomainError
from ...extensions import db
from ...models import ImportJob, utcnow
from ...navigation import app_path, refuse
from ...rendering import render, see_other
from ...security import scoped
from ...xlsx import download, stream_workbook, write_workbook
from . import bp

PREVIEW_ROWS = 200
RECENT_IMPORTS = 10
LABELS = {
    "email": "Email",
    "first_name": "First name",
    "last_name": "Last name",
    "user_id": "User ID",
    "location": "Location",
    "groups": "Groups",
    "role": "Role",
    "courses": "Courses",
    "manager_email": "Manager email",
    "employee_id": "User ID",
}


class ImportForm(FlaskForm):
    file = FileField("Spreadsheet", validators=[FileRequired("Choose a file to import.")])
    create_missing = BooleanField("Create locations and groups that do not exist yet")


def _background_rows() -> int:
    return current_app.config.get("IMPORT_BACKGROUND_ROWS", roster_import.BACKGROUND_ROWS)


def _recent() -> list[ImportJob]:
    """The latest imports, so a running or unconfirmed one can be found again."""
    columns = (
        ImportJob.id,
        ImportJob.filename,
        ImportJob.status,
        ImportJob.total_rows,
        ImportJob.created_at,
    )
    query = select(*columns)
    if current_user.scope_id is not None:  # a scoped administrator's own imports only
        query = query.where(ImportJob.created_by_id == current_user.id)
    return db.session.execute(query.order_by(ImportJob.id.desc()).limit(RECENT_IMPORTS)).all()


def load_job(job_id: int, *options) -> ImportJob:
    job = db.session.get(ImportJob, job_id, options=options)
    if job is None or (current_user.scope_id is not None and job.created_by_id != current_user.id):
        abort(404, "That import does not exist.")
    return job


def _render_job(job: ImportJob, status: int = 200):
    # Only a job waiting for confirmation shows its preview; a running one is polled every
    # second and reads no more than its progress.
    view = roster_import.preview_view(job.id, PREVIEW_ROWS) if job.status == "ready" else None
    preview, shown = view or ({}, [])
    return render(
        "users/import_job.html",
        "users/_import_job.html",
        status=status,
        job=job,
        preview=preview,
        labels=LABELS,
        shown=shown,
        preview_rows=PREVIEW_ROWS,
    )


@bp.route("/import", methods=["GET", "POST"])
@scoped
def import_users():
    """Upload a roster; answers its preview (or the progress of a large one)."""
    form = ImportForm()
    if request.method == "GET":
        return render("users/import.html", "users/_import_form.html", form=form, recent=_recent())
    if not form.validate():
        return render(
            "users/import.html", "users/_import_form.html", status=422, form=form, recent=_recent()
        )
    upload = form.file.data
    filename = (upload.filename or "upload").rsplit("/", 1)[-1][:255]
    try:
        table = roster_import.read_table(
            filename, upload.read(), current_app.config["IMPORT_MAX_ROWS"]
        )
    except roster_import.ImportFileError as error:
        form.file.errors = [str(error)]
        return render(
            "users/import.html", "users/_import_form.html", status=422, form=form, recent=_recent()
        )
    job = roster_import.new_job(
        table, filename, current_user.id, create_missing=bool(form.create_missing.data)
    )
    # A large file is left `previewing` for the worker (import_jobs).
    if job.total_rows <= _background_rows():
        roster_import.preview_job(job)
    db.session.commit()
    response = _render_job(job)
    # The preview has its own URL, so the page can be left and come back.
    response.headers["HX-Push-Url"] = url_for("users.import_job", job_id=job.id)
    return response


@bp.route("/import/<id:job_id>")
@scoped
def import_job(job_id: int):
    """An import: its progress, its preview, or its outcome (polled by htmx while running)."""
    return _render_job(load_job(job_id))


@bp.route("/import/<id:job_id>/confirm", methods=["POST"])
@scoped
def confirm_import(job_id: int):
    """Apply the valid rows of a previewed import in one transaction."""
    job = load_job(job_id)
    # Claim the job atomically: of two concurrent confirmations, one applies it.
    claimed = db.session.execute(
        update(ImportJob)
        .where(ImportJob.id == job.id, ImportJob.status == "ready")
        .values(status="applying", updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        return refuse(
            "This import is not waiting for confirmation.",
            back=app_path(url_for("users.import_job", job_id=job.id)),
        )
    db.session.refresh(job)
    if job.total_rows > _background_rows():
        db.session.commit()  # left `applying` for the worker (import_jobs)
        return see_other(url_for("users.import_job", job_id=job.id))
    try:
        roster_import.apply(job, current_user._get_current_object())
        db.session.commit()
    except (DomainError, IntegrityError) as error:
        db.session.rollback()
        message = (
            error.message
            if isinstance(error, DomainError)
            else "Users changed while this import was being applied; nothing was imported. "
            "Upload the file again for a fresh preview."
        )
        if request.htmx:
            return refuse(message)
        job = load_job(job_id)
        job.error = message
        return _render_job(job, status=409)
    return see_other(url_for("users.import_job", job_id=job.id))


@bp.route("/import/<id:job_id>/errors.xlsx")
@scoped
def import_errors(job_id: int):
    """The rows that will be (or were) skipped, with a reason column, as Excel."""
    # Not the job's documents: decoding 100,000 rows and their preview took seconds and
    # ~90 MB before the first byte. The database hands over their JSON texts and the rows
    # are decoded one at a time as the workbook is streamed.
    job = load_job(
        job_id,
        load_only(ImportJob.id, ImportJob.filename, ImportJob.status, ImportJob.created_by_id),
    )
    found = roster_import.error_texts(job.id)
    if found is None:
        abort(409, "This import has no preview yet.")
    fields, texts = found
    headers = ["Row", *[LABELS[f] for f in fields], "Reason"]
    stem = job.filename.rsplit(".", 1)[0] or "import"
    return download(
        f"{stem}-errors.xlsx", stream_workbook("Errors", headers, roster_import.error_rows(texts))
    )


@bp.route("/import/template.xlsx")
@scoped
def import_template():
    """An empty roster with the recognised columns and one example row."""
    buffer = io.BytesIO()
    write_workbook(
        buffer,
        "Users",
        roster_import.TEMPLATE_HEADERS,
        [["jane.doe@example.org", "Jane", "Doe", "00123", "", "", "learner"]],
        widths=[30, 16, 16, 12, 18, 24, 10],
    )
    buffer.seek(0)
    return send_file(
        buffer,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name="users-import-template.xlsx",
    )
