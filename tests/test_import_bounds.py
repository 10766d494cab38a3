"""Crafted workbooks (issue #14) are refused while being read: a clear message naming the
limit, bounded memory, and nothing written. Each file is built here, part by part."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import pytest

from lmsweb import roster_import
from lmsweb.models import ImportJob, User
from tests.conftest import count
from tests.import_support import upload, xlsx_bytes

# Python's peak while one crafted upload is refused. Before the fix the 200 MB string alone
# took 1.3 GB; a refused upload now holds little more than the upload itself.
PEAK_LIMIT = 40 * 1024 * 1024

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def workbook(sheet_rows, shared=None, dimension: str | None = None) -> bytes:
    """A minimal .xlsx: `sheet_rows` is the XML inside <sheetData> (bytes, or an iterable
    of byte chunks, so a huge part is written without being held); `shared` likewise for
    the shared strings (the <si> elements)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr(
            "[Content_Types].xml",
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        )
        z.writestr(
            "_rels/.rels",
            f'<Relationships xmlns="{RELS}"><Relationship Id="rId1" Type="{DOC_RELS}/'
            'officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        z.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{MAIN}" xmlns:r="{DOC_RELS}"><sheets>'
            '<sheet name="Users" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        shared_rel = (
            f'<Relationship Id="rId2" Type="{DOC_RELS}/sharedStrings" Target="sharedStrings.xml"/>'
            if shared is not None
            else ""
        )
        z.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<Relationships xmlns="{RELS}"><Relationship Id="rId1" Type="{DOC_RELS}/'
            f'worksheet" Target="worksheets/sheet1.xml"/>{shared_rel}</Relationships>',
        )
        dim = f'<dimension ref="{dimension}"/>' if dimension else ""
        _write(
            z,
            "xl/worksheets/sheet1.xml",
            [f'<worksheet xmlns="{MAIN}">{dim}<sheetData>'.encode()],
            sheet_rows,
            [b"</sheetData></worksheet>"],
        )
        if shared is not None:
            start = f'<sst xmlns="{MAIN}">'.encode()
            _write(z, "xl/sharedStrings.xml", start, shared, b"</sst>")
    return buffer.getvalue()


def _write(z: zipfile.ZipFile, name: str, *pieces) -> None:
    with z.open(name, "w", force_zip64=True) as member:
        for chunk in _flat(pieces):
            member.write(chunk)


def _flat(piece):
    if isinstance(piece, bytes):
        yield piece
    else:
        for part in piece:
            yield from _flat(part)


def inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


HEADER_ROW = '<row r="1">' + inline("A1", "Email") + inline("B1", "First name") + "</row>"


def refused(app, admin_client, name: str, data: bytes) -> str:
    """Upload `data`; assert a 422, nothing written and Python's peak under the bound."""
    # The multipart body is built here: the test client spools one over 500 KB to a
    # temporary file it never closes.
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="'
        + name.encode()
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + data
        + b"\r\n--B--\r\n"
    )
    tracemalloc.start()
    try:
        response = admin_client.post(
            "/admin/users/import", data=body, content_type="multipart/form-data; boundary=B"
        )
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 422, response.text[:500]
    assert peak < PEAK_LIMIT, f"peak {peak / 2**20:.1f} MiB"
    assert count(app, ImportJob) == 0 and count(app, User) == 1
    return response.text


def test_one_200_mb_shared_string_in_a_small_file_is_refused(app, admin_client):
    big = (b"a" * (1024 * 1024) for _ in range(200))
    data = workbook(
        (HEADER_ROW + '<row r="2"><c r="A2" t="s"><v>0</v></c></row>').encode(),
        shared=[b"<si><t>", big, b"</t></si>"],
    )
    assert len(data) < 400 * 1024
    text = refused(app, admin_client, "one-string.xlsx", data)
    assert "expands to more than 100 MB" in text


def test_a_shared_string_over_the_cell_limit_is_refused(app, admin_client):
    data = workbook(
        (HEADER_ROW + '<row r="2"><c r="A2" t="s"><v>0</v></c></row>').encode(),
        shared=b"<si><t>" + b"a" * (5 * 1024 * 1024) + b"</t></si>",
    )
    text = refused(app, admin_client, "long-string.xlsx", data)
    assert "cells are limited to 1,000 characters" in text


def test_an_inline_cell_over_the_cell_limit_is_refused(app, admin_client):
    app.config["IMPORT_MAX_CELL_CHARS"] = 100
    data = workbook((HEADER_ROW + '<row r="2">' + inline("A2", "b" * 101) + "</row>").encode())
    text = refused(app, admin_client, "long-cell.xlsx", data)
    assert "cells are limited to 100 characters" in text


def test_15_million_tiny_shared_strings_are_refused(app, admin_client):
    tiny = (b"<si><t>a</t></si>" * 100_000 for _ in range(150))
    data = workbook(HEADER_ROW.encode(), shared=tiny)
    assert len(data) < 1024 * 1024
    text = refused(app, admin_client, "tiny-strings.xlsx", data)
    assert "expands to more than 100 MB" in text


def test_more_shared_strings_than_the_limit_are_refused(app, admin_client):
    tiny = (b"<si><t>a</t></si>" * 100_000 for _ in range(11))
    data = workbook(HEADER_ROW.encode(), shared=tiny)
    text = refused(app, admin_client, "many-strings.xlsx", data)
    assert "1,100,000 different texts (shared strings); at most 1,000,000" in text


@pytest.mark.parametrize(
    ("far", "reach"),
    [("XFD1048576", "column XFD / row 1,048,576"), ("CV1000000", "column CV / row 1,000,000")],
)
def test_a_cell_far_away_is_refused_before_the_range_is_built(app, admin_client, far, reach):
    row = far.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    data = workbook(
        (
            HEADER_ROW
            + '<row r="2">'
            + inline("A2", "a@example.com")
            + f'</row><row r="{row}">'
            + inline(far, "x")
            + "</row>"
        ).encode()
    )
    assert len(data) < 5 * 1024
    text = refused(app, admin_client, "far.xlsx", data)
    assert f"The sheet reaches {reach}: only the first 50 columns" in text
    assert "100,000 rows (IMPORT_MAX_ROWS) are read" in text


def test_a_declared_range_beyond_the_limits_is_refused(app, admin_client):
    data = workbook(
        (HEADER_ROW + '<row r="2">' + inline("A2", "a@example.com") + "</row>").encode(),
        dimension="A1:XFD1048576",
    )
    assert "The sheet reaches column XFD" in refused(app, admin_client, "dim.xlsx", data)


def test_cells_without_positions_are_read_by_the_streaming_reader_within_bounds(app, admin_client):
    # 16,384 cells without `r` in one row: calamine would place them up to column XFD.
    wide = "<row>" + '<c t="inlineStr"><is><t>x</t></is></c>' * 16_384 + "</row>"
    data = workbook((HEADER_ROW + wide).encode())
    text = refused(app, admin_client, "unplaced.xlsx", data)
    assert "The sheet reaches column AY / row 2: only the first 50 columns" in text


def test_a_sheet_without_positions_reads_like_one_with_them(app):
    rows = (
        "<row>"
        + "".join(
            f'<c t="inlineStr"><is><t>{h}</t></is></c>' for h in ("Email", "First name", "User ID")
        )
        + "</row><row/><row>"
        + '<c t="inlineStr"><is><t> a@example.com </t></is></c><c/><c><v>42.0</v></c>'
        + "</row>"
    )
    with app.app_context():
        table = roster_import.read_table("plain.xlsx", workbook(rows.encode()), 10)
    assert table.fields == ["email", "first_name", "user_id"]
    assert table.rows == [["a@example.com", "", "42"]]
    assert table.lines == [3]


def test_a_document_type_declaration_is_refused(app, admin_client):
    data = workbook(b"")
    # Rebuild the sheet part with an entity declaration (the billion-laughs shape).
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(buffer, "w") as target:
        for item in source.infolist():
            body = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                cell = b"<row><c t='inlineStr'><is><t>&a;</t></is></c></row>"
                body = b'<!DOCTYPE w [<!ENTITY a "aaaa">]>' + body.replace(
                    b"<sheetData>", b"<sheetData>" + cell
                )
            target.writestr(item, body)
    text = refused(app, admin_client, "dtd.xlsx", buffer.getvalue())
    assert "document type declaration" in text


def test_a_csv_cell_over_the_limit_is_refused(app, admin_client):
    data = b"Email,Name\r\na@example.com," + b"n" * 2000 + b"\r\n"
    text = refused(app, admin_client, "long.csv", data)
    assert "Cell B2 is too long: cells are limited to 1,000 characters." in text


def test_an_ordinary_workbook_is_still_previewed(app, admin_client):
    response = upload(
        admin_client, "ok.xlsx", xlsx_bytes([["ok@example.com", "O", "K", "", "", ""]])
    )
    assert response.status_code == 200
    assert count(app, ImportJob) == 1
