"""Workbooks as other tools save them, made from what openpyxl writes: openpyxl stores every text
cell inline (`t="inlineStr"`), Excel, LibreOffice and Kobo's builder store texts once in a shared
strings table (`t="s"`, `xl/sharedStrings.xml`), often as rich text with phonetic runs, and
many tools leave out `<dimension>`. Used by the reader's tests and `bench/forms_xlsform.py`."""

from __future__ import annotations

import io
import re
import zipfile

_INLINE = re.compile(
    rb'<c ([^>]*?)t="inlineStr"([^>]*)><is><t(?: xml:space="preserve")?>([^<]*)</t></is></c>'
)
_SHARED_STRINGS_REL = (
    b'<Relationship Id="rIdSharedStrings" Type="http://schemas.openxmlformats.org/'
    b'officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
)
_SHARED_STRINGS_TYPE = (
    b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
)
_MAIN = b"http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _rich(text: bytes, index: int) -> bytes:
    """A string item as Excel writes formatted text: runs, and a phonetic run (not part of the
    value) after them."""
    if len(text) < 2 or b"&" in text:
        return b'<t xml:space="preserve">' + text + b"</t>"
    characters = text.decode()
    middle = len(characters) // 2
    runs = (
        b'<r><t xml:space="preserve">'
        + characters[:middle].encode()
        + b'</t></r><r><rPr><b/><sz val="11"/></rPr><t xml:space="preserve">'
        + characters[middle:].encode()
        + b"</t></r>"
    )
    return runs + (b'<rPh sb="0" eb="1"><t>PHONETIC</t></rPh>' if index % 2 else b"")


def with_shared_strings(content: bytes, *, rich: bool = False) -> bytes:
    """The workbook with its inline texts moved to a shared strings table (each distinct text
    once); `rich`: every other item as rich text with a phonetic run."""
    table: dict[bytes, int] = {}

    def share(match: re.Match[bytes]) -> bytes:
        index = table.setdefault(match.group(3), len(table))
        return b"<c " + match.group(1) + b't="s"' + match.group(2) + b"><v>%d</v></c>" % index

    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(content)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        members = {m.filename: source.read(m) for m in source.infolist()}
        for name, data in members.items():
            if name.startswith("xl/worksheets/"):
                members[name] = _INLINE.sub(share, data)
        members["xl/_rels/workbook.xml.rels"] = members["xl/_rels/workbook.xml.rels"].replace(
            b"</Relationships>", _SHARED_STRINGS_REL + b"</Relationships>"
        )
        members["[Content_Types].xml"] = members["[Content_Types].xml"].replace(
            b"</Types>", _SHARED_STRINGS_TYPE + b"</Types>"
        )
        items = b"".join(
            b"<si>"
            + (_rich(text, n) if rich else b'<t xml:space="preserve">' + text + b"</t>")
            + b"</si>"
            for n, text in enumerate(table)
        )
        members["xl/sharedStrings.xml"] = (
            b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="'
            + _MAIN
            + b'" count="%d" uniqueCount="%d">' % (len(table), len(table))
            + items
            + b"</sst>"
        )
        for name, data in members.items():
            target.writestr(name, data)
    return out.getvalue()


def without_dimensions(content: bytes) -> bytes:
    """The workbook without `<dimension>` in its sheets (openpyxl's read-only reader then parses
    each sheet in full to size it)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(content)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for member in source.infolist():
            data = source.read(member)
            if member.filename.startswith("xl/worksheets/"):
                data = re.sub(rb"<dimension [^>]*/>", b"", data)
            target.writestr(member.filename, data)
    return out.getvalue()
