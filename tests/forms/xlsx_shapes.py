"""Workbooks as other tools save them, made from what openpyxl writes: openpyxl stores every text
cell inline (`t="inlineStr"`), Excel, LibreOffice and Kobo's builder store texts once in a shared
strings table (`t="s"`, `xl/sharedStrings.xml`), often as rich text with phonetic runs, and
many tools leave out `<dimension>`. And the 300 KB workbook of issue 13. Used by the reader's
tests and `bench/forms_xlsform.py`."""

from __future__ import annotations

import io
import re
import zipfile

from openpyxl import Workbook

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


def issue_workbook() -> bytes:
    """The 300 KB workbook of issue 13: a village screening form (60 questions, a
    5,400-village cascading list) as an administrator would
    write it in full: every question with a hint and (numbers) a constraint message in both
    languages, every village with its county, administrative code, population, households and
    altitude."""
    book = Workbook()
    survey = book.active
    assert survey is not None
    survey.title = "survey"
    languages = ("Chinese (zh)", "English (en)")
    survey.append(
        [
            "type",
            "name",
            *(f"label::{lang}" for lang in languages),
            *(f"hint::{lang}" for lang in languages),
            "required",
            "choice_filter",
            "relevant",
            "constraint",
            *(f"constraint_message::{lang}" for lang in languages),
        ]
    )
    survey.append(["select_one townships", "township", "乡镇", "Township", None, None, "yes"])
    survey.append(
        [
            "select_one villages",
            "village",
            "村",
            "Village",
            "按乡镇筛选",
            "Filtered by township",
            "yes",
            "township=${township}",
        ]
    )
    for n in range(58):
        kind = ("integer", "text", "select_one yes_no", "decimal", "date")[n % 5]
        number = kind == "integer"
        survey.append(
            [
                kind,
                f"q{n}",
                f"问题{n}",
                f"Question {n}",
                f"第{n}题的填写说明",
                f"How to answer question {n}",
                "yes" if n % 3 else None,
                None,
                f"${{q{n - 1}}} != ''" if n % 7 == 1 else None,
                ". >= 0" if number else None,
                "不能为负数" if number else None,
                "Cannot be negative" if number else None,
            ]
        )
    choices = book.create_sheet("choices")
    choices.append(
        [
            "list_name",
            "name",
            *(f"label::{lang}" for lang in languages),
            "township",
            "county",
            "admin_code",
            "population",
            "households",
            "altitude",
        ]
    )
    choices.append(["yes_no", "yes", "是", "Yes"])
    choices.append(["yes_no", "no", "否", "No"])
    for t in range(60):
        choices.append(["townships", f"t{t:03d}", f"乡镇{t}", f"Township {t}", None, f"c{t % 6}"])
    for v in range(5_400):
        choices.append(
            [
                "villages",
                f"v{v:05d}",
                f"第{v}村民委员会",
                f"Village committee number {v}, township {v % 60}",
                f"t{v % 60:03d}",
                f"c{v % 60 % 6}",
                f"5323{v % 60:02d}{v:06d}",
                200 + v * 7 % 1_900,
                50 + v * 3 % 400,
                800 + v * 7919 % 2_003,
            ]
        )
    settings = book.create_sheet("settings")
    settings.append(["form_id", "form_title"])
    settings.append(["village_screening", "Village screening"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def with_rich_inline_text(content: bytes) -> bytes:
    """The workbook with every other inline text written as runs with a phonetic run after
    them (as some tools write East Asian text), in the cell itself."""
    counter = iter(range(1_000_000))

    def rich(match: re.Match[bytes]) -> bytes:
        inner = _rich(match.group(3), next(counter))
        return (
            b"<c "
            + match.group(1)
            + b't="inlineStr"'
            + match.group(2)
            + b"><is>"
            + inner
            + b"</is></c>"
        )

    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(content)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for member in source.infolist():
            data = source.read(member)
            if member.filename.startswith("xl/worksheets/"):
                data = _INLINE.sub(rich, data)
            target.writestr(member.filename, data)
    return out.getvalue()
