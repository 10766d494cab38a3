"""Crafted workbooks (issue #14) are refused while being read: a clear message naming the
limit, bounded memory, and nothing written. Each file is built here, part by part."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile

import pytest

from lmsweb import roster_import, sheet_reader
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


@pytest.mark.parametrize(
    "cell",
    [
        '<c t="inlineStr"><is><t>x</t></is></c>',
        '<c\tt="inlineStr"><is><t>x</t></is></c>',
        f'<x:c xmlns:x="{MAIN}" t="inlineStr"><x:is><x:t>x</x:t></x:is></x:c>',
    ],
    ids=["plain", "a tab after the name", "a namespace prefix"],
)
def test_cells_without_positions_are_read_by_the_streaming_reader_within_bounds(
    app, admin_client, cell
):
    # 16,384 cells without `r` in one row: calamine would place them up to column XFD. The
    # pre-check counts cell starts however they are spelled, so none passes as placed: the
    # streaming reader, not calamine, reads the sheet and refuses it.
    wide = '<row r="2">' + cell * 16_384 + "</row>"
    data = workbook((HEADER_ROW + wide).encode())
    with pytest.raises(sheet_reader.SheetError, match="reaches column AY / row 2"):
        sheet_reader.check_xlsx(io.BytesIO(data), sheet_reader.Limits())
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


# --- .ods ---------------------------------------------------------------------------------

ODS_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
)


def ods(rows: str, namespaces: str = ODS_NS, table: str = "table") -> bytes:
    """A minimal .ods whose first sheet holds `rows` (table-row elements)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr(
            "META-INF/manifest.xml",
            '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:'
            'manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" '
            'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
            '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type='
            '"text/xml"/></manifest:manifest>',
        )
        z.writestr(
            "content.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {namespaces} '
            f'office:version="1.2"><office:body><office:spreadsheet><{table}:table '
            f'{table}:name="Users">{rows}</{table}:table></office:spreadsheet></office:body>'
            "</office:document-content>",
        )
    return buffer.getvalue()


def ods_cell(text: str, repeat: int = 1, table: str = "table") -> str:
    repeated = f' {table}:number-columns-repeated="{repeat}"' if repeat > 1 else ""
    return (
        f'<{table}:table-cell office:value-type="string"{repeated}><text:p>{text}</text:p>'
        f"</{table}:table-cell>"
    )


def ods_row(*cells: str, repeat: int = 1, table: str = "table") -> str:
    repeated = f' {table}:number-rows-repeated="{repeat}"' if repeat > 1 else ""
    return f"<{table}:table-row{repeated}>{''.join(cells)}</{table}:table-row>"


ODS_HEADER = ods_row(ods_cell("Email"), ods_cell("First name"))
ODS_ROW = ods_row(ods_cell("a@example.com"), ods_cell("Ann"))
# What LibreOffice writes after the data: empty, formatted cells repeated to the sheet's end.
ODS_TRAILER = ods_row('<table:table-cell table:number-columns-repeated="1024"/>', repeat=1_048_574)


def test_an_ods_cell_repeated_across_every_column_is_refused(app, admin_client):
    data = ods(ODS_HEADER + ODS_ROW + ods_row(ods_cell("x", repeat=16_384)))
    assert len(data) < 2 * 1024
    text = refused(app, admin_client, "wide.ods", data)
    assert "The sheet reaches column XFD / row 3: only the first 50 columns" in text
    assert "100,000 rows (IMPORT_MAX_ROWS) are read" in text


def test_an_ods_row_repeated_a_million_times_is_refused(app, admin_client):
    data = ods(ODS_HEADER + ods_row(ods_cell("a@example.com"), repeat=1_048_575))
    text = refused(app, admin_client, "tall.ods", data)
    assert "The sheet reaches column A / row 1,048,576: only the first 50 columns" in text


def test_repeats_under_another_namespace_prefix_are_counted_the_same(app, admin_client):
    namespaces = ODS_NS.replace("xmlns:table=", "xmlns:t=")
    rows = ods_row(ods_cell("Email", table="t"), table="t") + ods_row(
        ods_cell("x", repeat=200, table="t"), table="t"
    )
    text = refused(app, admin_client, "prefix.ods", ods(rows, namespaces, table="t"))
    assert "The sheet reaches column GR / row 2" in text


def test_an_ods_cell_over_the_limit_is_refused(app, admin_client):
    data = ods(ODS_HEADER + ods_row(ods_cell("a@example.com"), ods_cell("n" * 5000)))
    text = refused(app, admin_client, "long.ods", data)
    assert "Cell B2 is too long: cells are limited to 1,000 characters." in text


def test_an_ods_that_expands_too_far_is_refused(app, admin_client):
    # 110 MB of one cell's text, a fraction of a megabyte compressed.
    padding = "<text:p/>" * (110 * 1024 * 1024 // 9)
    data = ods(ODS_HEADER + ods_row(f'<table:table-cell office:value-type="string">{padding}'
                                    "</table:table-cell>"))  # fmt: skip
    assert len(data) < 1024 * 1024
    text = refused(app, admin_client, "bomb.ods", data)
    assert "The workbook expands to more than 100 MB; it is refused as unsafe." in text


def test_an_ordinary_ods_with_libreoffice_trailing_rows_is_previewed(app):
    """The empty rows LibreOffice repeats to the sheet's end reach nothing: accepted, and
    read as the two rows it holds."""
    data = ods(ODS_HEADER + ODS_ROW + ODS_TRAILER)
    with app.app_context():
        table = roster_import.read_table("ok.ods", data, 10)
    assert table.fields == ["email", "first_name"]
    assert table.rows == [["a@example.com", "Ann"]]


# --- .xls ---------------------------------------------------------------------------------


def biff(kind: int, body: bytes) -> bytes:
    return struct.pack("<HH", kind, len(body)) + body


def xls_label(row: int, column: int, text: str) -> bytes:
    """A LABEL record (an inline text cell, 8-bit characters)."""
    raw = text.encode("latin-1")
    return biff(0x0204, struct.pack("<HHHHB", row, column, 15, len(raw), 0) + raw)


def xls(cells: bytes, dimensions: tuple[int, int] = (2, 2), unique_texts: int = 0) -> bytes:
    """A minimal .xls: an OLE2 container (512-byte sectors: one FAT sector, one directory
    sector) holding a BIFF8 workbook stream: globals (with an SST header when
    `unique_texts`), then the first worksheet with its DIMENSIONS and `cells`."""
    globals_ = biff(0x0809, struct.pack("<HHHHII", 0x0600, 0x0005, 0, 0, 0, 0))
    if unique_texts:
        globals_ += biff(0x00FC, struct.pack("<II", unique_texts, unique_texts))
    # BOUNDSHEET: where the sheet's BOF is (just after the globals) and its name.
    name = b"Users"
    where = len(globals_) + 4 + 8 + len(name) + 4
    globals_ += biff(0x0085, struct.pack("<IBBBB", where, 0, 0, len(name), 0) + name)
    globals_ += biff(0x000A, b"")
    assert len(globals_) == where
    rows, columns = dimensions
    sheet = (
        biff(0x0809, struct.pack("<HHHHII", 0x0600, 0x0010, 0, 0, 0, 0))
        + biff(0x0200, struct.pack("<IIHHH", 0, rows, 0, columns, 0))
        + cells
        + biff(0x000A, b"")
    )
    stream = globals_ + sheet
    stream += b"\0" * (max(4096, -(-len(stream) // 512) * 512) - len(stream))
    sectors = len(stream) // 512
    fat = [0xFFFFFFFD, 0xFFFFFFFE] + [3 + i for i in range(sectors - 1)] + [0xFFFFFFFE]
    fat += [0xFFFFFFFF] * (128 - len(fat))
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + b"\0" * 16
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + b"\0" * 6
        + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, 0xFFFFFFFE, 0, 0xFFFFFFFE, 0)
        + struct.pack("<109I", 0, *([0xFFFFFFFF] * 108))
    )

    def entry(name: str, kind: int, child: int, start: int, size: int) -> bytes:
        raw = (name + "\0").encode("utf-16-le")
        return (
            raw.ljust(64, b"\0")
            + struct.pack("<HBB", len(raw), kind, 1)
            + struct.pack("<III", 0xFFFFFFFF, 0xFFFFFFFF, child)
            + b"\0" * 36
            + struct.pack("<III", start, size, 0)
        )

    directory = (
        entry("Root Entry", 5, 1, 0xFFFFFFFE, 0)
        + entry("Workbook", 2, 0xFFFFFFFF, 2, len(stream))
        + b"\0" * 256
    )
    return header + struct.pack("<128I", *fat) + directory + stream


XLS_HEADER = xls_label(0, 0, "Email") + xls_label(0, 1, "First name")


def test_an_xls_cell_far_away_is_refused_before_calamine(app, admin_client):
    cells = XLS_HEADER + xls_label(1, 0, "a@example.com") + xls_label(65535, 255, "x")
    text = refused(app, admin_client, "far.xls", xls(cells))
    assert "The sheet reaches column IV / row 65,536: only the first 50 columns" in text


def test_an_xls_declared_range_beyond_the_limits_is_refused(app, admin_client):
    data = xls(XLS_HEADER, dimensions=(65536, 256))
    assert "The sheet reaches column IV / row 65,536" in refused(app, admin_client, "d.xls", data)


def test_an_xls_inline_text_over_the_limit_is_refused(app, admin_client):
    cells = XLS_HEADER + xls_label(1, 0, "a@example.com") + xls_label(1, 1, "n" * 5000)
    text = refused(app, admin_client, "long.xls", xls(cells))
    assert "Cell B2 is too long: cells are limited to 1,000 characters." in text


def test_an_xls_with_too_many_shared_texts_is_refused(app, admin_client):
    text = refused(app, admin_client, "sst.xls", xls(XLS_HEADER, unique_texts=2_000_000))
    assert "2,000,000 different texts (shared strings); at most 1,000,000" in text


def test_an_ordinary_xls_is_still_read(app):
    cells = XLS_HEADER + xls_label(1, 0, "a@example.com") + xls_label(1, 1, "Ann")
    with app.app_context():
        table = roster_import.read_table("ok.xls", xls(cells), 10)
    assert table.fields == ["email", "first_name"]
    assert table.rows == [["a@example.com", "Ann"]]


def test_a_damaged_xls_container_is_refused(app, admin_client):
    data = bytearray(xls(XLS_HEADER))
    data[48:52] = struct.pack("<I", 999)  # the directory's first sector, past the file
    assert "a damaged container" in refused(app, admin_client, "bad.xls", bytes(data))
