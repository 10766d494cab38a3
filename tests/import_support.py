"""Real roster files for import tests: written by openpyxl, csv module and zipfile."""

from __future__ import annotations

import csv
import io
import re
import zipfile

from openpyxl import Workbook

HEADERS = ["E-mail", "First Name", "Last Name", "Employee ID", "Location", "Groups"]


def xlsx_bytes(rows, headers=HEADERS) -> bytes:
    """An .xlsx written by openpyxl; string cells stay text (so "00123" keeps its zeros)."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(list(headers))
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def csv_bytes(rows, headers=HEADERS, delimiter=",", encoding="utf-8", bom=False) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(headers)
    writer.writerows(rows)
    data = buffer.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


def zip_bomb(size_mb: int = 310) -> bytes:
    """A tiny zip that inflates to `size_mb` MB of zeros, named like a workbook part."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            chunk = b"\0" * (1024 * 1024)
            for _ in range(size_mb):
                member.write(chunk)
    return buffer.getvalue()


def many_members(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for n in range(count):
            z.writestr(f"part{n}.xml", "<x/>")
    return buffer.getvalue()


def upload(client, name: str, data: bytes, headers=None, **fields):
    """POST a file to the import form, as the browser does (multipart)."""
    form = {"file": (io.BytesIO(data), name), **fields}
    return client.post(
        "/admin/users/import", data=form, content_type="multipart/form-data", headers=headers or {}
    )


def loaded_job(app, ident: int):
    """A fresh, detached copy of an import job with its documents (data, preview and
    result are loaded only when used: ImportJob)."""
    from sqlalchemy.orm import undefer

    from lmsweb.extensions import db
    from lmsweb.models import ImportJob

    with app.app_context():
        job = db.session.get(ImportJob, ident, options=[undefer("*")])
        db.session.expunge(job)
        return job


def job_id(response) -> int:
    match = re.search(r"/admin/users/import/(\d+)", response.text)
    assert match, response.text
    return int(match.group(1))
