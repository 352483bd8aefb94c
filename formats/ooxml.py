"""The SpreadsheetML package (ECMA-376) of an XLSX file: its worksheets, the fixed parts
written at close ([Content_Types].xml, relationships, workbook.xml, styles.xml), and OOXML's
own escaping of text.

Worksheets are zip entries (formats/zipstream.py) written one after the other as each ends;
the parts that list the sheets come last, once their number is known.
"""
from __future__ import annotations

from typing import BinaryIO, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from formats.names import sheet_name
from formats.values import string_bytes, xml_escaped
from formats.zipstream import DeflatedSpool, Entry, ZipWriter

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
SPREADSHEETML = "application/vnd.openxmlformats-officedocument.spreadsheetml"
DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

# cellXfs of styles.xml: the `s` attribute of a cell
STYLE_BOLD, STYLE_DATE, STYLE_DATETIME = 1, 2, 3
# ISA-L deflate level (0-3). Measured on the bench's sheet XML, MB/s of CPU and ratio:
# 0: 700, 5.6x; 1: 520, 6.8x; 2: 510, 6.9x (zlib: level 1 134, 6.7x; level 6 62, 9.7x).
COMPRESS_LEVEL = 1

# XML 1.0 cannot hold these characters; OOXML writes them as _xHHHH_ (so a literal _xHHHH_
# is escaped too, as _x005F_xHHHH_), which Excel reads back as the character.
CONTROL_BYTES = np.array([*range(0x09), 0x0B, 0x0C, *range(0x0D, 0x20)], np.uint8)
NONCHARACTERS = ("\ufffe", "\uffff")


def ooxml_text(arr: pa.Array) -> pa.Array:
    """XML character data for a string column, with OOXML's _xHHHH_ escapes where XML 1.0
    cannot hold a character; nulls stay null. Each step runs only when the batch needs it."""
    data, _ = string_bytes(arr)
    if data.size and (data[:-1][data[1:] == ord("x")] == ord("_")).any():
        arr = pc.replace_substring_regex(arr, "(_x[0-9a-fA-F]{4}_)", r"_x005F\1")
    for code in np.intersect1d(data[data < 0x20], CONTROL_BYTES):
        arr = pc.replace_substring(arr, chr(code), f"_x{code:04X}_")
    if (data == 0xEF).any():  # the first byte of U+FFFE and U+FFFF in UTF-8
        for char in NONCHARACTERS:
            arr = pc.replace_substring(arr, char, f"_x{ord(char):04X}_")
    return xml_escaped(arr)


def _xml_attr(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


CONTENT_TYPES_HEAD = (
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{SPREADSHEETML}.sheet.main+xml"/>'
    f'<Override PartName="/xl/styles.xml" ContentType="{SPREADSHEETML}.styles+xml"/>'
)

ROOT_RELS = (
    f'{DECLARATION}<Relationships xmlns="{PACKAGE_REL}">'
    f'<Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/>'
    '</Relationships>'
)


def styles(date_format: str, datetime_format: str) -> str:
    """Fonts (regular, bold), the two fills and one border Excel requires, and the cell
    formats: 0 default, 1 bold (the header), 2 date, 3 datetime."""
    return (
        f'{DECLARATION}<styleSheet xmlns="{MAIN}">'
        f'<numFmts count="2"><numFmt numFmtId="164" formatCode="{_xml_attr(date_format)}"/>'
        f'<numFmt numFmtId="165" formatCode="{_xml_attr(datetime_format)}"/></numFmts>'
        '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
        '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
        '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        '</styleSheet>'
    )


def column_widths(widths: Sequence[float]) -> str:
    """The <cols> element giving each column its width in characters."""
    cols = "".join(f'<col min="{n}" max="{n}" width="{w:g}" customWidth="1"/>' for n, w in enumerate(widths, 1))
    return f"<cols>{cols}</cols>" if cols else ""


def column_letters(number: int) -> str:
    """Excel's name of the column `number` (1-based): A … Z, AA …"""
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _attribute(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


class WorkbookPackage:
    """An XLSX zip being written: `begin_sheet`, `write` rows' XML any number of times,
    `end_sheet`; again for the next sheet; `close` adds the parts that list the sheets.

    A sheet's rows are deflated into a spool as they come; its head, which gives the sheet's
    dimension (A1:L12001, read by openpyxl's read-only mode and others to size a sheet), is
    put in front when the sheet ends and the whole is written to the zip at once."""

    def __init__(self, out: BinaryIO, columns: int, cols: str, date_format: str, datetime_format: str,
                 sheet: str | None = None):
        self.zip = ZipWriter(out)
        self.sheet = sheet  # what the sheets are named after (formats/names.py), "Sheet" without it
        self.columns, self.cols = columns, cols
        self.styles = styles(date_format, datetime_format)
        self.sheets = 0
        self.spool: DeflatedSpool | None = None
        self.rows = 0

    def begin_sheet(self) -> None:
        assert self.spool is None, "begin_sheet before end_sheet"
        self.sheets += 1
        self.spool = DeflatedSpool(COMPRESS_LEVEL)
        self.rows = 0

    def write(self, xml: bytes | np.ndarray, rows: int) -> None:
        """Add the XML of `rows` rows to the current sheet."""
        assert self.spool is not None, "write before begin_sheet"
        self.spool.write(xml)
        self.rows += rows

    def end_sheet(self) -> None:
        assert self.spool is not None, "end_sheet before begin_sheet"
        last = f":{column_letters(self.columns)}{self.rows}" if self.columns and self.rows else ""
        head = (f'{DECLARATION}<worksheet xmlns="{MAIN}" xmlns:r="{REL}"><dimension ref="A1{last}"/>'
                f"{self.cols}<sheetData>")
        self.spool.write(b"</sheetData></worksheet>")
        try:
            self.zip.add(self.spool.entry(f"xl/worksheets/sheet{self.sheets}.xml", head.encode()))
        finally:
            self.spool.close()
            self.spool = None

    def close(self) -> None:
        """End the current sheet, write the parts that list the sheets and the directory."""
        if self.spool is not None:
            self.end_sheet()
        sheets = range(1, self.sheets + 1)
        overrides = "".join(f'<Override PartName="/xl/worksheets/sheet{n}.xml" '
                            f'ContentType="{SPREADSHEETML}.worksheet+xml"/>' for n in sheets)
        entries = "".join(f'<sheet name="{_attribute(sheet_name(self.sheet, n))}" sheetId="{n}" r:id="rId{n}"/>'
                          for n in sheets)
        rels = "".join(f'<Relationship Id="rId{n}" Type="{REL}/worksheet" Target="worksheets/sheet{n}.xml"/>'
                       for n in sheets)
        rels += f'<Relationship Id="rId{self.sheets + 1}" Type="{REL}/styles" Target="styles.xml"/>'
        parts = {
            "[Content_Types].xml": f"{DECLARATION}{CONTENT_TYPES_HEAD}{overrides}</Types>",
            "_rels/.rels": ROOT_RELS,
            "xl/workbook.xml": f'{DECLARATION}<workbook xmlns="{MAIN}" xmlns:r="{REL}">'
                               f"<bookViews><workbookView/></bookViews><sheets>{entries}</sheets></workbook>",
            "xl/_rels/workbook.xml.rels": f'{DECLARATION}<Relationships xmlns="{PACKAGE_REL}">{rels}</Relationships>',
            "xl/styles.xml": self.styles,
        }
        for name, text in parts.items():
            self.zip.add(Entry.of(name, text.encode(), COMPRESS_LEVEL))
        self.zip.close()

    def abort(self) -> None:
        """Give up: the spooled sheet is dropped; nothing more reaches the output."""
        if self.spool is not None:
            self.spool.close()
            self.spool = None
