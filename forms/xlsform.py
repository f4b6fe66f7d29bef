"""XLSForm import: a workbook (survey, choices, settings and fieldsync's own `entities` sheet) read
with pyxform and translated into a draft fieldsync definition, with every problem located by
sheet, row and column.

Never drops an unsupported feature silently, never returns a draft that does not load, never
writes files or touches the database.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import math
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from pyxform.xls2json import workbook_to_json
from pyxform.xls2json_backends import DefinitionData, get_xlsform

from forms.compatibility import check_register_compatibility
from forms.definition_schema import (
    CHOICE_CODE,
    CHOICE_LIST_NAME,
    FORM_ID,
    LANGUAGE_TAG,
    load_definition,
)
from forms.expressions import ExpressionSyntaxError, parse_expression
from forms.issues import DefinitionError, ValidationIssue
from forms.register import find_register_field
from forms.xlsform_types import TYPE_CHECK_KEYS, canonical_type, map_type
from forms.xlsx_reader import WorkbookFacts, read_xlsx, read_xlsx_and_facts

MAX_XLSFORM_BYTES = 10 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 100 * 1024 * 1024
"""Sum of the uncompressed sizes of an .xlsx archive's members, checked before it is opened."""
MAX_ARCHIVE_MEMBERS = 10_000
MAX_SURVEY_ROWS = 5_000
MAX_CHOICE_ROWS = 100_000

SURVEY, CHOICES, SETTINGS, ENTITIES = "survey", "choices", "settings", "entities"
SHEETS = (SURVEY, CHOICES, SETTINGS, ENTITIES, "external_choices", "osm")
# What an upload must be, in the words messages use.
EXPECTED_WORKBOOK = "an XLSForm saved as an Excel workbook (.xlsx or .xls)"
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls, and encrypted Office files
_ENCRYPTED_MARKERS = ("EncryptionInfo".encode("utf-16-le"), "EncryptedPackage".encode("utf-16-le"))
_SNIFF_BYTES = 64 * 1024

IGNORED_COLUMNS = frozenset(
    {"appearance", "autoplay", "rows", "intent", "choice_filter_mode", "instance::", "sms_field"}
)
"""Purely cosmetic survey columns, ignored without a report (an image's `appearance` containing
`signature` still makes it a signature)."""

DROPPED_COLUMNS = {
    "default": "default answers are not supported",
    "read_only": "read-only fields are not supported",
    "readonly": "read-only fields are not supported",
    "required_message": "custom required messages are not supported",
    "guidance_hint": "guidance hints are not supported",
    "image": "media in labels is not supported",
    "audio": "media in labels is not supported",
    "video": "media in labels is not supported",
    "big-image": "media in labels is not supported",
    "note": "ODK `note` column is not supported",
    "trigger": "triggers are not supported (the calculation runs as usual)",
    "body": "custom body attributes are not supported",
    "save_to": "ODK entities are not supported: use the fieldsync entities sheet",
    "parameters": "question parameters are not supported",
}
"""Columns whose content is dropped with a located warning (reported once per cell that uses
them, except labels' media, reported once per column)."""

PER_CELL_COLUMNS = frozenset(
    {"trigger", "body", "save_to", "parameters", "repeat_count", "jr:count", "count"}
)
TRANSLATABLE = frozenset(
    {
        "label",
        "hint",
        "constraint_message",
        "constraint message",
        "required_message",
        "guidance_hint",
        "image",
        "audio",
        "video",
        "big-image",
        "media",
    }
)
KNOWN_LANGUAGES = {
    "english": "en",
    "chinese": "zh",
    "中文": "zh",
    "汉语": "zh",
    "french": "fr",
    "français": "fr",
    "francais": "fr",
    "spanish": "es",
    "español": "es",
    "espanol": "es",
    "portuguese": "pt",
    "português": "pt",
    "swahili": "sw",
    "kiswahili": "sw",
    "arabic": "ar",
    "russian": "ru",
    "hindi": "hi",
    "bengali": "bn",
    "bangla": "bn",
    "amharic": "am",
    "hausa": "ha",
    "yoruba": "yo",
    "igbo": "ig",
    "somali": "so",
    "nepali": "ne",
    "urdu": "ur",
    "indonesian": "id",
    "bahasa": "id",
    "vietnamese": "vi",
    "thai": "th",
    "burmese": "my",
    "khmer": "km",
    "lao": "lo",
    "tibetan": "bo",
    "uyghur": "ug",
    "mongolian": "mn",
    "german": "de",
    "italian": "it",
    "dutch": "nl",
    "turkish": "tr",
    "persian": "fa",
    "farsi": "fa",
    "pashto": "ps",
    "dari": "prs",
    "ukrainian": "uk",
    "polish": "pl",
    "romanian": "ro",
    "kinyarwanda": "rw",
    "luganda": "lg",
    "chichewa": "ny",
    "zulu": "zu",
    "xhosa": "xh",
    "tigrinya": "ti",
    "oromo": "om",
    "malagasy": "mg",
    "tagalog": "tl",
    "filipino": "fil",
    "haitian creole": "ht",
    "creole": "ht",
    "kurdish": "ku",
    "japanese": "ja",
    "korean": "ko",
}
"""Language names of label columns (`label::French`) and their tags."""

_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_]")
_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_LOOP = re.compile(r"(begin[ _]loop)(?:\s+over)?(?:\s+(\S+))?", re.IGNORECASE)
_END_LOOP = frozenset({"end_loop", "end loop"})
_LOOP_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_SEARCH = re.compile(r"\bsearch\s*\(\s*['\"]([^'\"]+)['\"]")
_SEARCH_FILTER = re.compile(
    r"\bsearch\s*\(\s*['\"][^'\"]+['\"]\s*,\s*['\"](\w+)['\"]\s*,\s*['\"]([^'\"]+)['\"]\s*,"
    r"\s*(.+?)\s*\)\s*$"
)
_INCLUDE = frozenset({"include", "include questions", "add include prompt"})
_TABLET_LOOKUPS = (
    (
        re.compile(r"\bpulldata\s*\("),
        "pulldata() reads a CSV file attached to the form on the tablet, and fieldsync forms "
        "carry no data files",
        "ask for the value as a question, bind the field to the register (bind::fieldsync) when "
        "it is the household's, or put the file's rows on the choices sheet as a list with "
        "attribute columns and filter a select with choice_filter",
    ),
    (
        re.compile(r"\binstance\s*\("),
        "instance(…) looks up the rows of a choice list or of an attached file, which "
        "fieldsync's expression language cannot",
        "compare the answer's code (`${q} = 'code'`, `selected(${q}, 'code')`), or "
        "filter a select's choices with choice_filter on the choices sheet's columns",
    ),
)
"""Expressions that read data the tablet would have to carry beside the form: why they are
dropped and what to write instead."""
_FROM_FILE = re.compile(
    r"(select_one_from_file|select one from file|select_multiple_from_file|"
    r"select multiple from file)\s+(\S+)",
    re.IGNORECASE,
)
BIND_COLUMNS = ("bind::fieldsync", "fieldsync::bind", "bind")
MAX_ATTRIBUTE_LENGTH = 200
"""Characters of a choice attribute's value (`load_definition`'s limit)."""
_YES = frozenset({"yes", "true", "true()", "1"})
_NO = frozenset({"no", "false", "false()", "0"})
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ImportIssue:
    """One problem of a workbook: sheet, 1-based row (1 is the header row; None for the whole
    sheet), column header (None for the whole row), message, whether it stops the import, and
    the cell reference (`D7`) when the column's letter is known."""

    sheet: str
    row: int | None
    column: str | None
    message: str
    blocking: bool = True
    cell: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sheet": self.sheet,
            "row": self.row,
            "column": self.column,
            "cell": self.cell,
            "message": self.message,
            "blocking": self.blocking,
        }


@dataclass(frozen=True)
class ImportResult:
    """The draft definition (JSON data that `load_definition` accepts) or None when any issue is
    blocking, and every issue found."""

    definition: dict[str, Any] | None
    issues: list[ImportIssue] = field(default_factory=list)

    @property
    def is_blocked(self) -> bool:
        return self.definition is None


def describe_non_workbook(content: bytes) -> str | None:
    """None when `content` is an Excel workbook (`.xlsx`: a ZIP archive holding `xl/workbook.xml`;
    `.xls`: an unencrypted Office 97–2003 compound file); otherwise what it looks like, for a
    message: "an empty file", "CSV text", "a password-protected (encrypted) workbook", "a ZIP
    archive that is not an Excel workbook", … Reads only the archive's directory or the first
    64 KiB; never raises."""
    if not content:
        return "an empty file"
    if content.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError, OSError):
            return "a damaged ZIP archive"
        if "xl/workbook.xml" in names:
            return None
        if "xl/workbook.bin" in names:
            return "a binary Excel workbook (.xlsb)"
        if "content.xml" in names and "mimetype" in names:
            return "an OpenDocument file (.ods, .odt …)"
        if "word/document.xml" in names:
            return "a Word document (.docx)"
        return "a ZIP archive that is not an Excel workbook"
    if content.startswith(_OLE2_MAGIC):
        if any(marker in content for marker in _ENCRYPTED_MARKERS):
            return "a password-protected (encrypted) workbook"
        if "Workbook".encode("utf-16-le") in content or "Book".encode("utf-16-le") in content:
            return None
        return "an old Office file that is not an Excel workbook"
    sample = content[:_SNIFF_BYTES]
    if b"\x00" not in sample:
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                # Incremental: a character cut at the end of the sample is not an error.
                text = codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
            except UnicodeDecodeError:
                continue
            first_line = text.lstrip().split("\n", 1)[0]
            if "\t" in first_line:
                return "tab-separated text"
            if "," in first_line:
                return "CSV text"
            return "text"
    return "a file that is not a spreadsheet"


def import_xlsform(
    content: bytes,
    *,
    filename: str | None = None,
    choices_files: dict[str, bytes] | None = None,
) -> ImportResult:
    """Translate an XLSForm workbook (`.xlsx` or `.xls` bytes) into a draft, the way pyxform
    reads it.

    `filename` (the uploaded file's name) gives the form id and title when the settings sheet
    has none, as pyxform does; `choices_files` (file name → CSV bytes) holds the files that
    `select_one_from_file` questions name. The draft loads with `load_definition` and passes
    `check_register_compatibility`; constructs fieldsync cannot hold are dropped with a
    non-blocking issue located at their cell; blocking issues are only what would make collected
    data wrong or what the form itself gets wrong. Anything but a workbook (CSV, an encrypted
    workbook, an empty file, a ZIP bomb …) is one blocking issue saying what it is.
    See docs/forms.md for the mapping.
    """
    if len(content) > MAX_XLSFORM_BYTES:
        return _blocked(ImportIssue("", None, None, f"file larger than {MAX_XLSFORM_BYTES} bytes"))
    received = describe_non_workbook(content)
    if received is not None:
        if "encrypted" in received:
            received += (
                " (the server cannot read it: remove the password in Excel, File → Info → "
                "Protect Workbook, and upload again)"
            )
        return _blocked(ImportIssue("", None, None, f"{received}, not {EXPECTED_WORKBOOK}"))
    is_xlsx = content.startswith(b"PK")
    facts = WorkbookFacts()
    fast = None
    if is_xlsx:
        bomb = _archive_problem(content)
        if bomb is not None:
            return _blocked(ImportIssue("", None, None, bomb))
        # One pass over the sheets gives both what pyxform would read and the facts issues are
        # located with; openpyxl (through pyxform's reader) only reads what that pass is unsure
        # of.
        fast = read_xlsx_and_facts(content)
        if fast is None:
            content = _with_dimensions(content)
            facts = _read_facts(content)
        else:
            facts = fast[1]
    try:
        workbook = (
            fast[0]
            if fast is not None
            else get_xlsform(content, file_type=".xlsx" if is_xlsx else ".xls")
        )
    except Exception as err:  # pyxform raises many kinds of errors on odd files
        return _blocked(_read_error(err))
    sheets = _sheets(workbook)
    if not sheets.get(SURVEY):
        return _blocked(ImportIssue(SURVEY, None, None, "the workbook has no survey sheet"))
    for sheet, limit in ((SURVEY, MAX_SURVEY_ROWS), (CHOICES, MAX_CHOICE_ROWS)):
        if len(sheets.get(sheet) or []) > limit:
            return _blocked(
                ImportIssue(
                    sheet,
                    limit + 2,
                    None,
                    f"more than {limit} rows in the {sheet} sheet: split the form",
                )
            )
    translator = _Translator(sheets, facts, filename=filename, choices_files=choices_files or {})
    translator.report_cell_facts()
    translator.check_with_pyxform(workbook)
    draft = translator.translate()
    if any(issue.blocking for issue in translator.issues):
        return ImportResult(None, translator.issues)
    translator.check_draft(draft)
    blocked = any(issue.blocking for issue in translator.issues)
    return ImportResult(None if blocked else draft, translator.issues)


def _blocked(issue: ImportIssue) -> ImportResult:
    return ImportResult(None, [issue])


def _read_error(err: Exception) -> ImportIssue:
    text = _SPACES.sub(" ", str(err)).strip()
    duplicate = re.search(r"Duplicate column header: (.+)", text)
    if duplicate:
        return ImportIssue(
            "", 1, duplicate.group(1), f"the column header {duplicate.group(1)!r} appears twice"
        )
    return ImportIssue("", None, None, f"not a readable XLSForm workbook: {text}")


def _sheets(workbook: DefinitionData) -> dict[str, list[dict[str, str]]]:
    sheets: dict[str, list[dict[str, str]]] = {}
    for name in SHEETS:
        rows = getattr(workbook, name, None)
        header = getattr(workbook, f"{name}_header", None)
        if rows is not None or header:
            sheets[name] = list(rows or [])
            sheets[f"{name}_header"] = list(header or [])
    return sheets


def _archive_problem(content: bytes) -> str | None:
    """Why an .xlsx archive must not be opened (a ZIP bomb, too many members), before openpyxl
    or pyxform decompress anything."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        return f"a damaged ZIP archive: {err}"
    if len(members) > MAX_ARCHIVE_MEMBERS:
        return f"the workbook archive has {len(members)} members (more than {MAX_ARCHIVE_MEMBERS})"
    total = sum(member.file_size for member in members)
    if total > MAX_UNCOMPRESSED_BYTES:
        return (
            f"the workbook uncompresses to {total} bytes (more than {MAX_UNCOMPRESSED_BYTES}): "
            "not opened"
        )
    return None


_WorkbookFacts = WorkbookFacts

_SHEET_ENTRY = re.compile(rb"<(?:\w+:)?sheet\b[^>]*>")
_ATTRIBUTE = re.compile(rb'([\w:]+)="([^"]*)"')
_RELATIONSHIP = re.compile(rb"<(?:\w+:)?Relationship\b[^>]*>")
_FORMULA = re.compile(rb"<(?:\w+:)?f[\s>/]")
_CELL_START = re.compile(rb"<(?:\w+:)?c\s[^>]*?\br=\"([A-Z]+[0-9]+)\"")
_VALUE = re.compile(rb"<(?:\w+:)?v>([^<]*)</(?:\w+:)?v>")
_MERGE = re.compile(rb'<(?:\w+:)?mergeCell\b[^>]*\bref="([A-Z0-9:]+)"')


def _read_facts(content: bytes) -> _WorkbookFacts:
    facts = _WorkbookFacts()
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:  # pyxform will say what is wrong with the file
        return facts
    try:
        for sheet in book.worksheets:
            key = sheet.title.strip().lower()
            facts.titles[key] = sheet.title
            header = next(sheet.iter_rows(min_row=1, max_row=1, values_only=True), ())
            facts.letters[key] = {
                _SPACES.sub(" ", str(value).strip()): get_column_letter(index)
                for index, value in enumerate(header, start=1)
                if value is not None and str(value).strip()
            }
    finally:
        book.close()
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            paths = _sheet_paths(archive)
            for title, path in paths.items():
                key = title.strip().lower()
                if key not in SHEETS:
                    continue
                xml = archive.read(path)
                for reference, cached in _formula_cells(xml):
                    facts.formulas.setdefault(key, []).append((reference, cached))
                if b"mergeCell" in xml:
                    facts.merged[key] = [m.group(1).decode() for m in _MERGE.finditer(xml)]
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        pass
    return facts


_ROW_NUMBER = re.compile(rb'<row\b[^>]*?\br="([0-9]+)"')
_CELL_COLUMN = re.compile(rb'<c r="([A-Z]{1,3})')
_BEFORE_DIMENSION = (b"<sheetViews", b"<sheetFormatPr", b"<cols", b"<sheetData")


def _with_dimensions(content: bytes) -> bytes:
    """The workbook with a `<dimension>` in every worksheet that lacks one.

    openpyxl's read-only reader (pyxform's too) parses a whole sheet to size it when the
    element is missing, as it is in workbooks written by many tools: seconds for a large
    choices sheet, per sheet and per opening. The dimension is computed from the rows and cells
    themselves (linear scans), so the read stays exact."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = archive.infolist()
            sheets = [m for m in members if m.filename.startswith("xl/worksheets/sheet")]
            patched: dict[str, bytes] = {}
            for member in sheets:
                xml = archive.read(member)
                data = xml.find(b"<sheetData")
                if data < 0 or xml.find(b"<dimension", 0, data) >= 0:
                    continue
                rows = [int(m.group(1)) for m in _ROW_NUMBER.finditer(xml, data)]
                columns = set(_CELL_COLUMN.findall(xml, data))
                if not rows or not columns:
                    continue
                last = max(columns, key=lambda c: (len(c), c)).decode()
                at = min(i for i in (xml.find(t) for t in _BEFORE_DIMENSION) if i >= 0)
                element = f'<dimension ref="A1:{last}{max(rows)}"/>'.encode()
                patched[member.filename] = xml[:at] + element + xml[at:]
            if not patched:
                return content
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as rewritten:
                for member in members:
                    data_bytes = patched.get(member.filename)
                    rewritten.writestr(
                        member.filename,
                        data_bytes if data_bytes is not None else archive.read(member),
                    )
            return out.getvalue()
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        return content


def _formula_cells(xml: bytes, limit: int = 200) -> list[tuple[str, str | None]]:
    """(cell reference, cached value or None) of the first `limit` formula cells of a sheet's
    XML: linear scans, no backtracking regular expression over the whole sheet."""
    found: list[tuple[str, str | None]] = []
    position = 0
    while len(found) < limit:
        formula = _FORMULA.search(xml, position)
        if formula is None:
            break
        start = max(xml.rfind(b"<c ", 0, formula.start()), xml.rfind(b":c ", 0, formula.start()))
        if start >= 0 and xml[start : start + 1] != b"<":
            start = xml.rfind(b"<", 0, start + 1)
        close = xml.find(b"c>", formula.end())
        cell = _CELL_START.match(xml, start) if start >= 0 else None
        if cell is not None:
            value = _VALUE.search(xml, formula.end(), close if close > 0 else len(xml))
            cached = value.group(1).decode("utf-8", "replace") or None if value else None
            found.append((cell.group(1).decode(), cached))
        position = formula.end()
    return found


def _sheet_paths(archive: zipfile.ZipFile) -> dict[str, str]:
    """Sheet title → the archive member holding its XML."""
    workbook = archive.read("xl/workbook.xml")
    rels = archive.read("xl/_rels/workbook.xml.rels")
    targets: dict[str, str] = {}
    for tag in _RELATIONSHIP.findall(rels):
        attributes = {k.decode(): v.decode() for k, v in _ATTRIBUTE.findall(tag)}
        target = attributes.get("Target", "")
        target = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        targets[attributes.get("Id", "")] = target
    paths: dict[str, str] = {}
    for tag in _SHEET_ENTRY.findall(workbook):
        attributes = {k.decode(): v.decode() for k, v in _ATTRIBUTE.findall(tag)}
        rel = next((v for k, v in attributes.items() if k.endswith(":id")), "")
        if rel in targets:
            paths[_unescape(attributes.get("name", ""))] = targets[rel]
    return paths


def _unescape(text: str) -> str:
    return (
        text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    )


@dataclass
class _Scope:
    """An open repeat (or the top level) while reading the survey rows."""

    fields: list[dict[str, Any]]
    json_prefix: str
    path: tuple[str, ...]
    group_relevance: list[list[str]] = field(default_factory=lambda: [[]])
    repeat_row: int | None = None


class _Translator:
    def __init__(
        self,
        workbook: dict[str, Any],
        facts: _WorkbookFacts,
        *,
        filename: str | None = None,
        choices_files: dict[str, bytes] | None = None,
    ) -> None:
        self.workbook = workbook
        self.facts = facts
        self.filename = filename
        self.choices_files = choices_files or {}
        self.issues: list[ImportIssue] = []
        self.field_rows: dict[str, int] = {}  # JSON path of a field → survey row
        self.entity_rows: dict[int, int] = {}
        self.choice_rows: dict[tuple[str, int], int] = {}  # (list, index) → choices row
        self.list_rows: dict[str, int] = {}
        self.repeat_paths: dict[str, str] = {}
        self.used_lists: set[str] = set()
        self.other_lists: set[str] = set()
        self.list_keys: dict[str, str] = {}
        self.file_lists: dict[str, list[dict[str, Any]]] = {}
        self.reported_columns: set[tuple[str, str]] = set()
        self.renames: dict[str, str] = {}
        self.last_path = ""
        self.default_language: str | None = None
        self.allow_choice_duplicates = False
        self.loop_rows: set[int] = set()  # survey rows inside a loop (translated per choice)
        self.loop_names: dict[str, str] = {}  # a loop question's name → its first copy's
        self.loop_reported: set[tuple[int, str | None, str, str | None]] = set()

    # -- reporting ------------------------------------------------------------------------

    def report(
        self,
        sheet: str,
        row: int | None,
        column: str | None,
        message: str,
        blocking: bool = True,
        *,
        value: str | None = None,
    ) -> None:
        if sheet == SURVEY and row in self.loop_rows:
            # A loop's questions are translated once per choice: each problem is told once.
            key = (row, column, message, value)
            if key in self.loop_reported:
                return
            self.loop_reported.add(key)
        cell = None
        if column is not None:
            letter = self.facts.letters.get(sheet, {}).get(column)
            if letter is not None:
                cell = f"{letter}{row if row is not None else 1}"
        if value is not None and repr(value) not in message:
            shown = value if len(value) <= 120 else value[:117] + "…"
            message = f"{message} (cell value {shown!r})"
        self.issues.append(ImportIssue(sheet, row, column, message, blocking, cell))

    def rows(self, sheet: str) -> list[tuple[int, dict[str, str]]]:
        # pyxform keeps empty rows inside the data, so list index + 2 is the spreadsheet row.
        return [(index + 2, row) for index, row in enumerate(self.workbook.get(sheet) or []) if row]

    def report_cell_facts(self) -> None:
        """Formula cells (their last calculated value is what is read) and merged cells (only
        the first cell of a range holds a value), located."""
        for sheet, cells in self.facts.formulas.items():
            for reference, cached in cells[:50]:
                row = int(re.sub(r"[A-Z]", "", reference))
                column = self.column_at(sheet, re.sub(r"[0-9]", "", reference))
                if cached is None:
                    message = (
                        f"formula cell {reference} has no calculated value (saved by a program "
                        "that does not calculate): read as empty; open and save it in Excel, or "
                        "type the value"
                    )
                else:
                    message = f"formula cell {reference}: its calculated value {cached!r} is used"
                self.issues.append(
                    ImportIssue(sheet, row, column, message, False, reference),
                )
        for sheet, ranges in self.facts.merged.items():
            for reference in ranges[:50]:
                first = reference.split(":")[0]
                row = int(re.sub(r"[A-Z]", "", first))
                column = self.column_at(sheet, re.sub(r"[0-9]", "", first))
                self.issues.append(
                    ImportIssue(
                        sheet,
                        row,
                        column,
                        f"merged cells {reference}: only {first} holds the value, the other "
                        "cells of the range are read as empty",
                        False,
                        first,
                    )
                )

    def column_at(self, sheet: str, letter: str) -> str | None:
        return next((h for h, x in self.facts.letters.get(sheet, {}).items() if x == letter), None)

    # -- pyxform's own structural checks -----------------------------------------------------

    def check_with_pyxform(self, original: DefinitionData) -> None:
        # pyxform knows neither fieldsync's bind column nor its boolean type (checked as an
        # integer, which has the same structural rules). It rewrites the rows it is given, so
        # it gets its own copies (rows are flat dicts of strings).
        survey = [
            {
                k: ("integer" if k == "type" and _normalise(v) == "boolean" else v)
                for k, v in row.items()
                if k not in BIND_COLUMNS
            }
            for row in self.workbook[SURVEY]
        ]
        copies: dict[str, Any] = {"survey": survey, "sheet_names": original.sheet_names}
        odk_entities = {h.lower() for h in (self.workbook.get(f"{ENTITIES}_header") or [{}])[0]} & {
            "list_name",
            "dataset",
            "label",
        }
        for name in (CHOICES, SETTINGS, "external_choices", *([ENTITIES] if odk_entities else [])):
            if name in self.workbook:
                copies[name] = [dict(row) for row in self.workbook[name]]
                copies[f"{name}_header"] = [dict(row) for row in self.workbook[f"{name}_header"]]
        copies["survey_header"] = [
            {k: v for k, v in row.items() if k not in BIND_COLUMNS}
            for row in self.workbook.get(f"{SURVEY}_header", [])
        ]
        warnings: list[str] = []
        try:
            workbook_to_json(
                workbook_dict=DefinitionData(**copies),
                fallback_form_name=_form_id_from_filename(self.filename) or "data",
                warnings=warnings,
            )
        except Exception as err:  # PyXFormError, and whatever else odd sheets provoke
            self.report_pyxform(str(err), blocking=True)
        for warning in warnings:
            self.report_pyxform(warning, blocking=False)

    def report_pyxform(self, message: str, *, blocking: bool) -> None:
        match = re.search(r"\[row : (\d+)\]", message)
        row = int(match.group(1)) if match else None
        text = re.sub(r"\s+", " ", message.replace(match.group(0), "") if match else message)
        sheet = SURVEY
        named = re.search(r"'?\b(survey|choices|settings|entities|external_choices)'? sheet", text)
        if re.search(r"Unmatched '(begin|end)_loop'", text):
            return  # told at the loop's row by `expand_loops`, with what to do
        if re.search(r"\bloop without list name|List name not in columns sheet", text):
            # About a `begin loop` row of the survey (pyxform says "columns" for choices).
            survey = self.workbook.get(SURVEY) or []
            cell = survey[row - 2].get("type") if row and 0 <= row - 2 < len(survey) else None
            advice = (
                "write the list the loop goes over: `begin loop over LIST`"
                if "without list name" in text
                else "add the list's choices to the choices sheet (the loop's questions are "
                "asked once per choice)"
            )
            self.report(
                SURVEY,
                row,
                "type",
                f"pyxform: {text.strip().rstrip('.')} — {advice}",
                blocking,
                value=cell,
            )
            return
        if named:
            sheet = named.group(1)
        elif re.search(r"\bchoices?\b|list_name|list name", text, re.IGNORECASE) and (
            row is None or "question" not in text.lower()
        ):
            sheet = CHOICES
        column = None
        quoted = re.search(r"'([^']+)' column", text)
        if quoted and quoted.group(1) in self.facts.letters.get(sheet, {}):
            column = quoted.group(1)
        self.report(sheet, row, column, f"pyxform: {text.strip()}", blocking)

    # -- translation ------------------------------------------------------------------------

    def translate(self) -> dict[str, Any]:
        draft: dict[str, Any] = {}
        self.settings(draft)
        self.entities(draft)
        draft["fields"] = self.survey()
        draft["choice_lists"] = self.choices()
        _inline_choices(draft)
        self.calculated_value_types(draft)
        self.apply_renames(draft["fields"])
        if not draft["choice_lists"]:
            del draft["choice_lists"]
        return draft

    def settings(self, draft: dict[str, Any]) -> None:
        rows = self.rows(SETTINGS)
        row_number, row = rows[0] if rows else (2, {})
        name_setting: str | None = None
        for column, value in row.items():
            key = column.split("::")[0].strip().lower().replace(" ", "_")
            if key in ("form_id", "id_string", "set_form_id"):
                draft["form_id"] = value
            elif key in ("form_title", "title", "set_form_title"):
                draft["title"] = value
            elif key == "name":
                name_setting = value
            elif key in ("namespaces", FIELDSYNC_TITLE):
                continue  # the `fieldsync:` prefix; the title in every language (read below)
            elif key == "version":
                if value.isdigit() and 0 < int(value) < 2**31:
                    draft["version"] = int(value)
                else:
                    self.report(
                        SETTINGS,
                        row_number,
                        column,
                        f"version {value!r} ignored: the server numbers versions 1, 2, 3 … "
                        "when it publishes",
                        blocking=False,
                    )
            elif key == "public_key":
                self.report(
                    SETTINGS,
                    row_number,
                    column,
                    "encrypted forms (public_key) cannot be imported: the server could not read "
                    "the answers to check them, keep the registers or monitor households; remove "
                    "the public_key setting to import the form unencrypted",
                )
            elif key == "default_language":
                self.default_language = _language_tag(value)
            elif key == "allow_choice_duplicates":
                self.allow_choice_duplicates = _flag(value) is True
            elif key in ("style", "instance_name", "submission_url", "auto_send", "auto_delete"):
                self.report(
                    SETTINGS,
                    row_number,
                    column,
                    f"setting {column!r} ignored (the tablet client has its own)",
                    blocking=False,
                )
            else:
                self.report(
                    SETTINGS, row_number, column, f"setting {column!r} ignored", blocking=False
                )
        title = self.fieldsync_title(row)
        if title is not None:
            draft["title"] = title
        form_id = draft.get("form_id")
        if form_id is not None and not re.fullmatch(FORM_ID, form_id):
            fixed = _slug(form_id)
            if fixed is not None and re.fullmatch(FORM_ID, fixed):
                self.report(
                    SETTINGS,
                    row_number,
                    _column(row, "form_id", "id_string"),
                    f"form_id {form_id!r} becomes {fixed!r} (fieldsync form ids are lower-case "
                    "letters, digits and _)",
                    blocking=False,
                )
                draft["form_id"] = fixed
        if "form_id" not in draft:
            fallback = _form_id_from_filename(self.filename) or _slug(name_setting or "")
            if fallback is None:
                self.report(
                    SETTINGS,
                    row_number if rows else None,
                    "form_id",
                    "form_id is missing (no settings sheet or no form_id column) and there is "
                    "no file name to take it from",
                )
                return
            draft["form_id"] = fallback
            source = "the file name" if _form_id_from_filename(self.filename) else "the name"
            self.report(
                SETTINGS,
                row_number if rows else None,
                "form_id",
                f"no form_id: {fallback!r}, from {source}, is used",
                blocking=False,
            )
        if "title" not in draft:
            stem = _file_stem(self.filename)
            draft["title"] = stem or draft["form_id"]
            self.report(
                SETTINGS,
                row_number if rows else None,
                "form_title",
                f"no form_title: {draft['title']!r} is used",
                blocking=False,
            )

    def entities(self, draft: dict[str, Any]) -> None:
        headers = {h.lower() for h in (self.workbook.get(f"{ENTITIES}_header") or [{}])[0]}
        if headers & {"list_name", "dataset", "label", "create_if", "update_if", "entity_id"}:
            self.report(
                ENTITIES,
                None,
                None,
                "ODK entities sheet ignored (with the survey's save_to columns): the form "
                "imports without ODK entity lists; fieldsync's own entities sheet has the "
                "columns name, type, id_field, create, repeat, parent",
                blocking=False,
            )
            return
        entities: list[dict[str, Any]] = []
        for row_number, row in self.rows(ENTITIES):
            entity: dict[str, Any] = {}
            for column, value in row.items():
                if column in ("name", "type", "id_field", "repeat", "parent"):
                    entity[column] = value
                elif column == "create":
                    flag = _flag(value)
                    if flag is None:
                        self.report(ENTITIES, row_number, column, "create must be yes or no")
                    entity["create"] = bool(flag)
                else:
                    self.report(ENTITIES, row_number, column, f"unknown column {column!r}")
            entity.setdefault("create", False)
            self.entity_rows[len(entities)] = row_number
            entities.append(entity)
        draft["entities"] = entities

    def survey(self) -> list[dict[str, Any]]:
        root = _Scope(fields=[], json_prefix="fields", path=())
        stack = [root]
        for row_number, row in self.expand_loops(self.rows(SURVEY)):
            raw_type = _normalise(row.get("type", ""))
            lowered = raw_type.lower()
            self.survey_columns(row_number, row)
            if not raw_type:
                if row.get("name"):
                    self.report(
                        SURVEY, row_number, "type", "a row with a name needs a type", value=""
                    )
                continue
            scope = stack[-1]
            if lowered in ("begin_group", "begin group"):
                relevant = _straighten(row.get("relevant") or row.get("relevance") or "")
                if relevant and not self.expression(
                    row_number, _column(row, "relevant", "relevance"), relevant
                ):
                    relevant = ""
                scope.group_relevance.append([f"({relevant})"] if relevant else [])
                continue
            if lowered in ("end_group", "end group"):
                if len(scope.group_relevance) > 1:
                    scope.group_relevance.pop()
                else:
                    self.report(SURVEY, row_number, "type", "end_group without begin_group")
                continue
            if lowered in ("begin_repeat", "begin repeat"):
                repeat = self.question(row_number, row, {"type": "repeat"}, scope)
                if repeat is not None:
                    self.repeat_count(row_number, row, repeat)
                    repeat["fields"] = []
                    path = (*scope.path, repeat["name"])
                    self.repeat_paths.setdefault(repeat["name"], ".".join(path))
                    stack.append(
                        _Scope(
                            fields=repeat["fields"],
                            json_prefix=f"{self.last_path}.fields",
                            path=path,
                            repeat_row=row_number,
                        )
                    )
                continue
            if lowered in ("end_repeat", "end repeat"):
                if len(stack) > 1:
                    stack.pop()
                else:
                    self.report(SURVEY, row_number, "type", "end_repeat without begin_repeat")
                continue
            spec = self.field_type(row_number, raw_type, row)
            if spec is None:
                continue
            question = self.question(row_number, row, spec, scope)
            if question is not None and spec.get("or_other"):
                self.add_other(row_number, question, scope)
        for open_scope in stack[1:]:
            self.report(SURVEY, open_scope.repeat_row, "type", "begin_repeat without end_repeat")
        return root.fields

    # -- loops: `begin loop over L` … `end loop`, expanded as pyxform expands them ------------

    def expand_loops(
        self, rows: list[tuple[int, dict[str, str]]]
    ) -> list[tuple[int, dict[str, str]]]:
        """The survey rows with every loop replaced by its questions once per choice of its
        list, as pyxform builds it (a group per choice, `none` skipped, `%(label)s`, `%(name)s`
        and `%(<choice column>)s` in every text replaced by the choice's). fieldsync flattens
        groups, so a question `q` of loop `L` for choice `c` is named `L_c_q`, and `${q}` inside
        the loop means the same choice's `L_c_q`. Rows keep their spreadsheet row numbers."""
        out: list[tuple[int, dict[str, str]]] = []
        index = 0
        while index < len(rows):
            row_number, row = rows[index]
            raw_type = _normalise(row.get("type", ""))
            loop = _LOOP.fullmatch(raw_type)
            if raw_type.lower() in _END_LOOP:
                self.report(
                    SURVEY,
                    row_number,
                    "type",
                    "end loop without begin loop: remove it, or add the `begin loop over LIST` "
                    "row it closes",
                    value=raw_type,
                )
                index += 1
                continue
            if loop is None:
                out.append(rows[index])
                index += 1
                continue
            depth, end = 1, index + 1
            while end < len(rows) and depth:
                inner = _normalise(rows[end][1].get("type", ""))
                depth += 1 if _LOOP.fullmatch(inner) else -1 if inner.lower() in _END_LOOP else 0
                end += 1
            if depth:
                self.report(
                    SURVEY,
                    row_number,
                    "type",
                    "begin loop without end loop: every row below it would be inside the loop; "
                    "add an `end loop` row after its last question",
                    value=raw_type,
                )
                return out
            body = rows[index + 1 : end - 1]
            if not _balanced(body):
                self.report(
                    SURVEY,
                    row_number,
                    "type",
                    "a group or repeat begun inside this loop ends outside it (or the other way "
                    "round): end every group and repeat inside the loop before its `end loop`",
                    value=raw_type,
                )
                return out
            self.loop_rows.update(n for n, _ in body)
            out.extend(self.loop_copies(row_number, row, loop.group(2), self.expand_loops(body)))
            index = end
        return out

    def loop_copies(
        self,
        row_number: int,
        row: dict[str, str],
        list_name: str | None,
        body: list[tuple[int, dict[str, str]]],
    ) -> list[tuple[int, dict[str, str]]]:
        loop_name = row.get("name", "")
        if not list_name or not loop_name:
            return []  # pyxform refuses it (no list, no name): its message is reported
        choices = [
            choice
            for _, choice in self.rows(CHOICES)
            if (choice.get("list_name") or choice.get("list name")) == list_name
            and (choice.get("name") or choice.get("value")) not in (None, "none")
        ]
        if not choices:
            return []  # pyxform refuses it (the list is not on the choices sheet)
        if self.has_or_other(list_name) and not any(
            (c.get("name") or c.get("value")) == "other" for c in choices
        ):
            # pyxform adds `or_other`'s choice to the list itself, so the loop goes over it too
            choices.append({"name": "other", "label": "Other", "label::zh": "其他"})
        names = {r["name"] for _, r in body if r.get("name")}
        for name in names:
            self.loop_names.setdefault(
                name,
                _INVALID_NAME_CHARS.sub(
                    "_", f"{loop_name}_{choices[0].get('name') or choices[0].get('value')}_{name}"
                ),
            )
        relevant = row.get("relevant") or row.get("relevance")
        out: list[tuple[int, dict[str, str]]] = [
            (row_number, {"type": "begin group", **({"relevant": relevant} if relevant else {})})
        ]
        first_name = None
        for choice in choices:
            code = choice.get("name") or choice.get("value") or ""
            prefix = _INVALID_NAME_CHARS.sub("_", f"{loop_name}_{code}_")

            def rename(match: re.Match[str], prefix: str = prefix) -> str:
                name = match.group(1)
                return f"${{{prefix}{name}}}" if name in names else match.group(0)

            for body_row, question in body:
                copy: dict[str, str] = {}
                for column, value in question.items():
                    if column == "type":
                        copy[column] = value
                        continue
                    text = _LOOP_PLACEHOLDER.sub(
                        functools.partial(_loop_value, column=column, choice=choice), value
                    )
                    copy[column] = _REFERENCE.sub(rename, text)
                if question.get("name"):
                    copy["name"] = prefix + _INVALID_NAME_CHARS.sub("_", copy["name"])
                    first_name = first_name or copy["name"]
                    if len(copy["name"]) > 64:
                        self.report(
                            SURVEY,
                            body_row,
                            "name",
                            f"in loop {loop_name!r} this question is named {copy['name']!r}, "
                            "longer than 64 characters: shorten the loop's name, the choice "
                            "codes or the question's name",
                            value=question["name"],
                        )
                out.append((body_row, copy))
        out.append((row_number, {"type": "end group"}))
        example = f" (first: {first_name!r})" if first_name else ""
        self.report(
            SURVEY,
            row_number,
            "type",
            f"loop over {list_name!r} expanded as pyxform expands it: its questions once per "
            f"choice ({len(choices)}), named <loop>_<choice>_<question>{example}; on ODK they "
            f"sit in a group per choice (/{loop_name}/<choice>/<question>)",
            blocking=False,
            value=row.get("type"),
        )
        return out

    def has_or_other(self, list_name: str) -> bool:
        """Whether a select over `list_name` is `… or_other` (pyxform then adds `other`)."""
        for _, row in self.rows(SURVEY):
            select = _select_type(_normalise(row.get("type", "")))
            if select is not None and select[1] == list_name and select[2]:
                return True
        return False

    def repeat_count(self, row_number: int, row: dict[str, str], repeat: dict[str, Any]) -> None:
        column = next((c for c in ("repeat_count", "jr:count", "count") if row.get(c)), None)
        if column is None:
            return
        # XLSForm's repeat_count is jr:count: a number or an expression, the form language's
        # `count` ("exactly N instances").
        count = _straighten(row[column].strip())
        if self.expression(row_number, column, count):
            repeat["count"] = count

    def add_other(self, row_number: int, question: dict[str, Any], scope: _Scope) -> None:
        """`or_other` as pyxform builds it: an `other` choice and a text question shown when it
        is selected."""
        self.other_lists.add(question["choices"])  # the fieldsync list name
        name = question["name"]
        other = {
            "name": f"{name}_other",
            "type": "text",
            "label": {"zh": "请注明其他", "en": "Specify other"},
            "relevant": f"selected(${{{name}}}, 'other')",
        }
        if "relevant" in question:
            other["relevant"] = f"({question['relevant']}) and {other['relevant']}"
        path = f"{scope.json_prefix}[{len(scope.fields)}]"
        self.field_rows[path] = row_number
        scope.fields.append(other)

    def survey_columns(self, row_number: int, row: dict[str, str]) -> None:
        for column, value in row.items():
            key, language = _split_column(column)
            if column in BIND_COLUMNS or key in IGNORED_COLUMNS or _is_fieldsync_column(column):
                continue
            if key in PER_CELL_COLUMNS:
                if key in ("repeat_count", "jr:count", "count") or key == "parameters":
                    continue  # read with the question
                self.report(SURVEY, row_number, column, DROPPED_COLUMNS[key], False, value=value)
            elif key in ("label", "hint", "constraint_message", "constraint message"):
                if language and _tag_of(language) is None:
                    self.report_column_once(
                        SURVEY,
                        column,
                        f"language {language!r} ({_language_tag(language)}) kept only where it "
                        "stands in for a missing Chinese or English text: it is not a language "
                        "tag (write it as `Name (xx)`)",
                    )
            elif key in DROPPED_COLUMNS or key.startswith("media"):
                self.report_column_once(
                    SURVEY, column, DROPPED_COLUMNS.get(key, "media not supported")
                )
            elif key not in (
                "type",
                "name",
                "required",
                "relevant",
                "relevance",
                "constraint",
                "calculation",
                "calculate",
                "choice_filter",
            ):
                self.report_column_once(SURVEY, column, f"unknown column {column!r} ignored")

    def report_column_once(self, sheet: str, column: str, message: str) -> None:
        if (sheet, column) not in self.reported_columns:
            self.reported_columns.add((sheet, column))
            self.report(sheet, 1, column, message, blocking=False)

    def field_type(
        self, row_number: int, raw_type: str, row: dict[str, str]
    ) -> dict[str, Any] | None:
        """The field's type keys (`type`, `choices`, `media` …) or None when the question is
        dropped (reported)."""
        from_file = _FROM_FILE.fullmatch(raw_type)
        if from_file:
            return self.from_file(row_number, from_file.group(1), from_file.group(2))
        select = _select_type(raw_type)
        if select is not None:
            kind, list_name, or_other = select
            if kind == "select_one_external":
                self.drop(
                    row_number, "external selects (external_choices) are not supported", raw_type
                )
                return None
            search = _SEARCH.search(row.get("appearance", ""))
            if search is not None and f"{search.group(1)}.csv" in self.choices_files:
                return self.search_choices(row_number, row, kind, list_name, search)
            if search is not None:
                file_name = f"{search.group(1)}.csv"
                self.report(
                    SURVEY,
                    row_number,
                    "appearance",
                    f"question dropped: its choices are the rows of {file_name!r}, which the "
                    "tablet reads through search() (the choices sheet names only that file's "
                    "columns), and it was not uploaded with the form: upload it, write the "
                    "choices on the choices sheet"
                    + (
                        f", or make it `{kind}_from_file {file_name}` and upload the file with "
                        "the form"
                        if kind in ("select_one", "select_multiple")
                        else ""
                    ),
                    False,
                    value=row["appearance"],
                )
                return None
            self.used_lists.add(list_name)
            spec: dict[str, Any] = {"type": kind, "choices": self.list_key(row_number, list_name)}
            if or_other:
                spec["or_other"] = True
                self.report(
                    SURVEY,
                    row_number,
                    "type",
                    "or_other: an 'other' choice and a text question "
                    f"'{row.get('name', '')}_other' are added, as pyxform does",
                    blocking=False,
                    value=raw_type,
                )
            return spec
        if raw_type.lower() in _INCLUDE:
            included = row.get("name") or "?"
            self.report(
                SURVEY,
                row_number,
                "type",
                f"include inserts the questions of another XLSForm ({included!r}, which pyxform "
                "reads from the same folder); an upload is one workbook, so those questions "
                "cannot be read: copy that form's survey rows (and its choices) into this "
                "workbook in place of this row, and upload again",
                value=raw_type,
            )
            return None
        canonical = canonical_type(raw_type)
        if canonical is None:
            self.report(SURVEY, row_number, "type", "unknown question type", value=raw_type)
            return None
        mapping = map_type(canonical, appearance=row.get("appearance", ""))
        if mapping.action in ("drop", "metadata"):
            self.drop(row_number, mapping.message, raw_type)
            return None
        if mapping.action != "field":
            self.report(SURVEY, row_number, "type", mapping.message, value=raw_type)
            return None
        spec = dict(mapping.spec)
        if row.get("constraint"):  # the row's own constraint replaces the type's, as in pyxform
            for key in TYPE_CHECK_KEYS:
                spec.pop(key, None)
        if canonical == "range":
            spec.update(self.range_parameters(row_number, row))
        elif row.get("parameters"):
            self.report(
                SURVEY,
                row_number,
                "parameters",
                DROPPED_COLUMNS["parameters"],
                False,
                value=row["parameters"],
            )
        return spec

    def list_key(self, row_number: int, list_name: str) -> str:
        """The fieldsync name of a choice list (lower-case letters, digits and _)."""
        if list_name in self.list_keys:
            return self.list_keys[list_name]
        key = list_name
        if not re.fullmatch(CHOICE_LIST_NAME, list_name):
            key = _slug(list_name) or "list"
            if not key[0].isalpha():
                key = f"list_{key}"
            while key in self.list_keys.values():
                key = f"{key}_"
            self.report(
                SURVEY,
                row_number,
                "type",
                f"choice list {list_name!r} is named {key!r} (fieldsync list names are "
                "lower-case letters, digits and _)",
                blocking=False,
            )
        self.list_keys[list_name] = key
        return key

    def drop(self, row_number: int, message: str, raw_type: str) -> None:
        self.report(
            SURVEY, row_number, "type", f"question dropped: {message}", False, value=raw_type
        )

    def range_parameters(self, row_number: int, row: dict[str, str]) -> dict[str, Any]:
        """A range as a number with its `min`, `max` and `step` (pyxform's defaults: start=1,
        end=10, step=1; a range from 10 down to 0 is the numbers 0 to 10)."""
        raw = row.get("parameters", "")
        parameters = dict(
            part.split("=", 1) for part in re.split(r"[\s;,]+", raw.strip()) if "=" in part
        )
        texts = [parameters.get(word, default) for word, default in _RANGE_DEFAULTS]
        try:
            start, end, step = (float(text) for text in texts)
        except ValueError:
            self.report(
                SURVEY, row_number, "parameters", "range parameters are not numbers", value=raw
            )
            return {}
        if not all(math.isfinite(n) for n in (start, end, step)) or step == 0:
            self.report(
                SURVEY, row_number, "parameters", "range parameters are not usable", value=raw
            )
            return {}
        whole = all(n.is_integer() for n in (start, end, step))
        spec: dict[str, Any] = {"type": "integer" if whole else "decimal"}
        for key, number in (("min", min(start, end)), ("max", max(start, end)), ("step", step)):
            spec[key] = int(abs(number) if key == "step" else number) if whole else number
        if not whole:
            spec["step"] = abs(step)
        return spec

    def search_choices(
        self,
        row_number: int,
        row: dict[str, str],
        kind: str,
        list_name: str,
        search: re.Match[str],
    ) -> dict[str, Any] | None:
        """A select whose choices are the rows of an uploaded CSV read through
        `search('file', …)`: the list's row on the choices sheet names the CSV column of the
        codes (`name`) and the columns of the labels (`label…`, comma-separated: joined);
        `search('file', 'matches', 'column', value)` becomes the choice_filter
        `column = value`; other search modes are dropped with a warning (every row is a
        choice)."""
        file_name = f"{search.group(1)}.csv"
        placeholder = next(
            (
                choice
                for _, choice in self.rows(CHOICES)
                if (choice.get("list_name") or choice.get("list name")) == list_name
            ),
            None,
        )
        if placeholder is None:
            return None  # pyxform refuses it: the list is not on the choices sheet
        value_column = placeholder.get("name") or placeholder.get("value") or "name"
        label_columns: dict[str, list[str]] = {}
        for column, value in placeholder.items():
            key, language = _split_column(column)
            if key == "label":
                tag = (_tag_of(language) or _language_tag(language)) if language else ""
                label_columns[tag] = [c.strip() for c in value.split(",") if c.strip()]
        choices, problem, cut = _csv_choices(
            self.choices_files[file_name], value_column=value_column, label_columns=label_columns
        )
        if problem is not None:
            self.report(
                SURVEY, row_number, "appearance", f"{file_name}: {problem}", value=row["appearance"]
            )
            return None
        self.report_cut_values(row_number, "appearance", file_name, cut)
        key = _slug(file_name.rsplit(".", 1)[0]) or "file_choices"
        self.file_lists[key] = choices
        self.list_keys[key] = key
        spec: dict[str, Any] = {"type": kind, "choices": key, "choices_file": file_name}
        arguments = _SEARCH_FILTER.search(row["appearance"])
        if arguments is not None:
            mode, column, value = arguments.groups()
            source = f"{_attribute_name(column)} = {value.strip()}"
            if mode.lower() == "matches" and self.expression(
                row_number, "appearance", source, choice=True
            ):
                spec["choice_filter"] = source
            elif mode.lower() != "matches":
                self.report(
                    SURVEY,
                    row_number,
                    "appearance",
                    f"search() filter {mode!r} dropped: fieldsync filters choices by equality "
                    "only (`matches`), so every row of the file is a choice; a choice_filter "
                    "can narrow them",
                    False,
                    value=row["appearance"],
                )
        return spec

    def report_cut_values(self, row_number: int, column: str, file_name: str, cut: int) -> None:
        if cut:
            self.report(
                SURVEY,
                row_number,
                column,
                f"{file_name}: {cut} value(s) cut to their first {MAX_ATTRIBUTE_LENGTH} "
                f"characters (a choice's extra columns hold at most {MAX_ATTRIBUTE_LENGTH})",
                blocking=False,
            )

    def from_file(self, row_number: int, head: str, file_name: str) -> dict[str, Any] | None:
        kind = "select_multiple" if "multiple" in head.lower() else "select_one"
        content = self.choices_files.get(file_name)
        if content is None:
            self.drop(
                row_number,
                f"its choices are in {file_name!r}, which was not uploaded with the form "
                "(attach it to the upload)",
                f"{head} {file_name}",
            )
            return None
        choices, problem, cut = _csv_choices(content)
        if problem is not None:
            self.report(SURVEY, row_number, "type", f"{file_name}: {problem}", value=file_name)
            return None
        self.report_cut_values(row_number, "type", file_name, cut)
        list_name = _slug(file_name.rsplit(".", 1)[0]) or "file_choices"
        self.file_lists[list_name] = choices
        self.list_keys[list_name] = list_name
        return {"type": kind, "choices": list_name, "choices_file": file_name}

    def question(
        self, row_number: int, row: dict[str, str], spec: dict[str, Any], scope: _Scope
    ) -> dict[str, Any] | None:
        name = row.get("name")
        if not name and spec["type"] == "note":
            name = f"generated_note_name_{row_number}"  # pyxform's name for a nameless note
        if not name:
            self.report(SURVEY, row_number, "name", "a question needs a name")
            return None
        if _INVALID_NAME_CHARS.search(name) and re.fullmatch(r"[A-Za-z_][\w.\-]*", name):
            new = _INVALID_NAME_CHARS.sub("_", name)
            self.renames[name] = new
            self.report(
                SURVEY,
                row_number,
                "name",
                f"name {name!r} becomes {new!r} (fieldsync names are letters, digits and _); "
                "references to it are renamed too",
                blocking=False,
            )
            name = new
        question: dict[str, Any] = {"name": name}
        question.update({k: v for k, v in spec.items() if k != "or_other"})
        text_columns: tuple[tuple[str, tuple[str, ...]], ...] = (
            ("label", ("label",)),
            ("hint", ("hint",)),
        )
        for key, columns in text_columns:
            text = self.bilingual(row, columns)
            if text is not None:
                question[key] = text
        required = row.get("required")
        if required is not None:
            flag = _flag(required)
            if flag is None:
                if self.expression(row_number, "required", required):
                    question["required"] = _straighten(required)
            elif flag:
                question["required"] = True
        relevance = [part for group in scope.group_relevance for part in group]
        own_relevant = row.get("relevant") or row.get("relevance")
        if own_relevant:
            own_relevant = _straighten(own_relevant)
            if self.expression(row_number, _column(row, "relevant", "relevance"), own_relevant):
                relevance.append(f"({own_relevant})" if relevance else own_relevant)
        if relevance:
            question["relevant"] = " and ".join(relevance)
        for key, columns, current, choice in (
            ("constraint", ("constraint",), True, False),
            ("calculation", ("calculation", "calculate"), False, False),
            ("choice_filter", ("choice_filter",), False, True),
        ):
            column = next((c for c in columns if row.get(c)), None)
            if column is None:
                continue
            if key == "calculation" and question["type"] != "calculated":
                self.report(
                    SURVEY,
                    row_number,
                    column,
                    "a calculation on a question (a dynamic default) is dropped: fieldsync "
                    "computes only calculate rows",
                    blocking=False,
                    value=row[column],
                )
                continue
            source = _straighten(row[column])
            if self.expression(row_number, column, source, current=current, choice=choice):
                question[key] = source
        if question["type"] == "calculated" and "calculation" not in question:
            self.report(
                SURVEY,
                row_number,
                "type",
                "calculate row dropped: it has no calculation fieldsync can compute",
                blocking=False,
            )
            return None
        message = self.bilingual(row, ("constraint_message", "constraint message"))
        if message is not None and "constraint" in question:
            question["constraint_message"] = message
        bind_column = next((c for c in BIND_COLUMNS if row.get(c)), None)
        if bind_column is not None:
            question["bind"] = row[bind_column]
        _read_fieldsync_columns(row, question)
        path = f"{scope.json_prefix}[{len(scope.fields)}]"
        self.field_rows[path] = row_number
        self.last_path = path
        scope.fields.append(question)
        return question

    def bilingual(self, row: dict[str, str], keys: tuple[str, ...]) -> dict[str, str] | None:
        """zh and en texts (and, when the form language has them, every other language under its
        tag): a missing zh or en is filled from the form's default language, else the text
        without a language, else the first language."""
        default: str | None = None
        texts: dict[str, str] = {}
        for column, value in row.items():
            key, language = _split_column(column)
            if key not in keys:
                continue
            if not language or language.strip().lower() == "default":
                default = value
            else:
                texts.setdefault(_tag_of(language) or _language_tag(language), value)
        if not texts and default is None:
            return None
        fallback = (
            texts.get(self.default_language or "") or default or next(iter(texts.values()), None)
        )
        assert fallback is not None
        result = {"zh": texts.get("zh") or fallback, "en": texts.get("en") or fallback}
        result.update(
            {t: v for t, v in texts.items() if t not in result and _LANGUAGE.fullmatch(t)}
        )
        return result

    def fieldsync_title(self, row: dict[str, str]) -> dict[str, str] | None:
        """`fieldsync:form_title::Chinese (zh)`, `…::English (en)`, `…::fr` (what the writer
        writes beside pyxform's one plain `form_title`), or `form_title::<language>`: the title in
        every language."""
        keys = (*TITLE_COLUMNS, FIELDSYNC_TITLE)
        if not any(_split_column(column)[1] and _split_column(column)[0] in keys for column in row):
            return None
        return self.bilingual(row, keys)

    def expression(
        self,
        row_number: int,
        column: str,
        source: str,
        *,
        current: bool = False,
        choice: bool = False,
    ) -> bool:
        """Whether fieldsync's expression language reads `source`; if not, a located warning
        that the construct is dropped (the caller drops it)."""
        source = _straighten(source)
        for old, new in self.renames.items():
            source = source.replace(f"${{{old}}}", f"${{{new}}}")
        in_loops = [n for n in _REFERENCE.findall(source) if n in self.loop_names]
        if in_loops:
            self.report(
                SURVEY,
                row_number,
                column,
                f"{column} dropped: ${{{in_loops[0]}}} is a question of a loop, asked once per "
                f"choice, so it names no single answer; name one of them instead "
                f"(${{{self.loop_names[in_loops[0]]}}})",
                blocking=False,
                value=source,
            )
            return False
        for pattern, why, instead in _TABLET_LOOKUPS:
            if pattern.search(source):
                self.report(
                    SURVEY,
                    row_number,
                    column,
                    f"{column} dropped: {why}; instead, {instead}",
                    blocking=False,
                    value=source,
                )
                return False
        try:
            parse_expression(source, allow_current=current, allow_choice_properties=choice)
        except ExpressionSyntaxError as err:
            self.report(
                SURVEY,
                row_number,
                column,
                f"{column} dropped: expression not supported: {err}",
                blocking=False,
                value=source,
            )
            return False
        return True

    def choices(self) -> dict[str, list[dict[str, Any]]]:
        lists: dict[str, list[dict[str, Any]]] = {}
        codes: dict[str, set[str]] = {}
        for row_number, row in self.rows(CHOICES):
            list_name = row.get("list_name") or row.get("list name")
            if not list_name or list_name not in self.used_lists:
                continue
            code = row.get("name") or row.get("value")
            if code is None:
                self.report(CHOICES, row_number, "name", "a choice needs a name")
                continue
            original, list_name = list_name, self.list_keys.get(list_name, list_name)
            if not re.fullmatch(CHOICE_CODE, code):
                fixed = re.sub(r"[^A-Za-z0-9_.-]", "_", code.strip())[:64] or "_"
                if not re.match(r"[A-Za-z0-9_]", fixed):
                    fixed = f"_{fixed}"[:64]
                self.report(
                    CHOICES,
                    row_number,
                    "name",
                    f"choice {code!r} of list {original!r} is stored as {fixed!r} (choice codes "
                    "are letters, digits, _, . and -)",
                    blocking=False,
                )
                code = fixed
            seen = codes.setdefault(list_name, set())
            if code in seen:
                self.report(
                    CHOICES,
                    row_number,
                    "name",
                    f"duplicate choice {code!r} in list {list_name!r} dropped"
                    + (
                        " (allow_choice_duplicates: answers cannot tell the two apart)"
                        if self.allow_choice_duplicates
                        else ""
                    ),
                    blocking=not self.allow_choice_duplicates,
                )
                continue
            seen.add(code)
            choice: dict[str, Any] = {"code": code}
            label = self.bilingual(row, ("label",))
            choice["label"] = label if label is not None else {"zh": code, "en": code}
            attributes: dict[str, str] = {}
            for column, value in row.items():
                key, _ = _split_column(column)
                if key in ("list_name", "list name", "name", "value", "label"):
                    continue
                if key.startswith("media") or key in ("image", "audio", "video", "big-image"):
                    self.report_column_once(CHOICES, column, "media not supported")
                    continue
                if len(value) > MAX_ATTRIBUTE_LENGTH:
                    self.report(
                        CHOICES,
                        row_number,
                        column,
                        f"value cut to its first {MAX_ATTRIBUTE_LENGTH} characters (a choice's "
                        f"extra columns hold at most {MAX_ATTRIBUTE_LENGTH})",
                        blocking=False,
                    )
                    value = value[:MAX_ATTRIBUTE_LENGTH].rstrip()  # as pyxform reads it back
                attributes[_attribute_name(column)] = value
            if attributes:
                choice["attributes"] = attributes
            bucket = lists.setdefault(list_name, [])
            self.choice_rows[(list_name, len(bucket))] = row_number
            self.list_rows.setdefault(list_name, row_number)
            bucket.append(choice)
        for list_name, choices in self.file_lists.items():
            lists.setdefault(list_name, choices)
        for list_name in self.other_lists:
            bucket = lists.setdefault(list_name, [])
            if not any(c["code"] == "other" for c in bucket):
                bucket.append({"code": "other", "label": {"zh": "其他", "en": "Other"}})
        for missing in sorted(
            self.list_keys.get(n, n)
            for n in self.used_lists
            if self.list_keys.get(n, n) not in lists
        ):
            self.report(
                CHOICES,
                None,
                "list_name",
                f"no choices for list {missing!r}",
            )
        return lists

    def apply_renames(self, fields: list[dict[str, Any]]) -> None:
        if not self.renames:
            return
        for question in fields:
            for key in ("relevant", "constraint", "calculation", "choice_filter", "required"):
                value = question.get(key)
                if isinstance(value, str):
                    for old, new in self.renames.items():
                        value = value.replace(f"${{{old}}}", f"${{{new}}}")
                    question[key] = value
            self.apply_renames(question.get("fields", []))

    def calculated_value_types(self, draft: dict[str, Any]) -> None:
        # A bound calculation takes its value type from the register field it fills.
        entity_types = {e.get("name"): e.get("type") for e in draft.get("entities", [])}
        stack = list(draft["fields"])
        while stack:
            question = stack.pop()
            stack.extend(question.get("fields", []))
            bind = question.get("bind")
            if question["type"] != "calculated" or not isinstance(bind, str) or "." not in bind:
                continue
            entity, _, name = bind.partition(".")
            entity_type = entity_types.get(entity)
            register_field = find_register_field(entity_type, name) if entity_type else None
            if register_field is not None and register_field.kind in (
                "text",
                "integer",
                "decimal",
                "boolean",
                "date",
            ):
                question["value_type"] = register_field.kind
        for entity in draft.get("entities", []):
            repeat = entity.get("repeat")
            if repeat in self.repeat_paths:
                entity["repeat"] = self.repeat_paths[repeat]

    # -- the draft as fieldsync sees it ------------------------------------------------------

    def check_draft(self, draft: dict[str, Any]) -> None:
        self.drop_dangling_text_references(draft)
        for _round in range(50):
            try:
                definition = load_definition(draft)
                break
            except DefinitionError as err:
                if not self.drop_failing_expressions(draft, err.issues):
                    for issue in err.issues:
                        self.locate(issue)
                    return
        else:
            return
        for issue in check_register_compatibility(definition):
            self.locate(issue)

    def drop_dangling_text_references(self, draft: dict[str, Any]) -> None:
        """A label or hint naming a question that is not in the draft (`${x}`, most often a
        question the import dropped) loses that reference, with a warning at its cell: the tablet
        has no value to show there, and pyxform refuses the workbook written back."""
        questions: list[tuple[str, dict[str, Any]]] = []
        pending = [(f"fields[{i}]", q) for i, q in enumerate(draft.get("fields", []))]
        while pending:
            path, question = pending.pop()
            questions.append((path, question))
            children = question.get("fields", [])
            pending.extend((f"{path}.fields[{i}]", q) for i, q in enumerate(children))
        names = {question.get("name") for _, question in questions}
        for path, question in sorted(questions, key=lambda item: self.field_rows.get(item[0]) or 0):
            for key in ("label", "hint"):
                texts = question.get(key)
                if not isinstance(texts, dict):
                    continue
                missing: list[str] = []
                for language, text in texts.items():
                    if not isinstance(text, str):
                        continue
                    gone = [n for n in _REFERENCE.findall(text) if n not in names]
                    if gone:
                        missing += [n for n in gone if n not in missing]
                        kept = _REFERENCE.sub(
                            lambda m: m.group(0) if m.group(1) in names else "", text
                        )
                        texts[language] = re.sub(r"[ \t]{2,}", " ", kept).strip()
                if missing:
                    shown = ", ".join(f"${{{n}}}" for n in missing)
                    self.report(
                        SURVEY,
                        self.field_rows.get(path),
                        key,
                        f"{shown} removed from the {key}: no question of that name was imported, "
                        "so there is no value to show",
                        blocking=False,
                        value=shown,
                    )

    def drop_failing_expressions(
        self, draft: dict[str, Any], issues: list[ValidationIssue]
    ) -> bool:
        """Drop the expressions the definition check refuses (most often: they name a question
        that was dropped) with a warning at their cell; False when some issue is not about an
        expression (those block the import)."""
        droppable = []
        for issue in issues:
            match = re.fullmatch(
                r"((?:fields\[\d+\]\.?)+)\.?(relevant|constraint|calculation|choice_filter|"
                r"required|count)",
                issue.path,
            )
            if match is None:
                return False
            droppable.append((match.group(1).rstrip("."), match.group(2), issue.message))
        for json_path, key, message in droppable:
            question = _at_path(draft, json_path)
            if question is None or key not in question:
                continue
            row = self.field_rows.get(json_path)
            column = _SURVEY_COLUMN_FOR_KEY.get(key, key)
            value = question.pop(key)
            what = key
            if key == "calculation":
                question["calculation"] = "''"  # kept as an empty text: other rows refer to it
                question["value_type"] = "text"
                what = "calculation (the field stays, empty)"
            if key == "constraint":
                question.pop("constraint_message", None)
            self.report(
                SURVEY,
                row,
                column,
                f"{what} dropped: {message}",
                blocking=False,
                value=value if isinstance(value, str) else None,
            )
        return True

    def locate(self, issue: ValidationIssue) -> None:
        """Report a definition issue at the workbook cell it came from."""
        path = issue.path
        entity = re.match(r"entities\[(\d+)\](?:\.(\w+))?", path)
        if entity:
            self.report(
                ENTITIES,
                self.entity_rows.get(int(entity.group(1))),
                entity.group(2),
                issue.message,
            )
            return
        choice_list = re.match(r"choice_lists\.([^.\[]+)(?:\[(\d+)\](?:\.(\w+))?)?", path)
        if choice_list:
            list_name, index, key = choice_list.groups()
            row = (
                self.choice_rows.get((list_name, int(index)))
                if index is not None
                else self.list_rows.get(list_name)
            )
            column = {"code": "name", "label": None}.get(key or "", key) if index else "list_name"
            self.report(CHOICES, row, column, issue.message)
            return
        field_path = re.match(r"((?:fields\[\d+\]\.?)+)(?:\.?(\w+))?", path)
        if field_path:
            json_path = field_path.group(1).rstrip(".")
            key = field_path.group(2)
            column = _SURVEY_COLUMN_FOR_KEY.get(key or "", key)
            self.report(SURVEY, self.field_rows.get(json_path), column, issue.message)
            return
        if path == "fields":
            self.report(
                SURVEY,
                None,
                None,
                "no question is left that fieldsync can hold (see the warnings for what was "
                "dropped)",
            )
            return
        sheet_column = {"form_id": "form_id", "title": "form_title", "version": "version"}
        key = path.split(".")[0].split("[")[0]
        if key in sheet_column:
            self.report(SETTINGS, 2, sheet_column[key], issue.message)
        else:
            self.report(SURVEY, None, None, f"{path}: {issue.message}")


def _balanced(rows: list[tuple[int, dict[str, str]]]) -> bool:
    """Whether every group, repeat and loop begun in `rows` ends in them, in order."""
    stack: list[str] = []
    for _, row in rows:
        words = _normalise(row.get("type", "")).lower().replace("_", " ").split()
        if (
            len(words) >= 2
            and words[0] in ("begin", "end")
            and words[1]
            in (
                "group",
                "repeat",
                "loop",
            )
        ):
            if words[0] == "begin":
                stack.append(words[1])
            elif not stack or stack.pop() != words[1]:
                return False
    return not stack


def _loop_value(match: re.Match[str], column: str, choice: dict[str, str]) -> str:
    """What `%(key)s` in a loop question's `column` becomes for one choice: `name` its code,
    `label` its label in the column's language (else its label without a language, else its
    first), any other key the choice's column of that name; unknown keys stay as written."""
    key = match.group(1)
    if key == "name":
        return choice.get("name") or choice.get("value") or ""
    if key != "label":
        return choice.get(key, match.group(0))
    language = _split_column(column)[1]
    labels = {_split_column(c)[1]: v for c, v in choice.items() if _split_column(c)[0] == "label"}
    if language:
        tag = _tag_of(language) or _language_tag(language)
        for other, text in labels.items():
            if other and (_tag_of(other) or _language_tag(other)) == tag:
                return text
    return labels.get("") or next(iter(labels.values()), match.group(0))


def _at_path(draft: dict[str, Any], json_path: str) -> dict[str, Any] | None:
    node: Any = draft
    for name, index in re.findall(r"(\w+)\[(\d+)\]", json_path):
        try:
            node = node[name][int(index)]
        except (KeyError, IndexError, TypeError):
            return None
    return node if isinstance(node, dict) else None


_SURVEY_COLUMN_FOR_KEY = {
    "choices": "type",
    "type": "type",
    "bind": "bind::fieldsync",
    "calculation": "calculation",
    "value_type": "bind::fieldsync",
}


def _normalise(value: str) -> str:
    return _SPACES.sub(" ", value.strip())


def _column(row: dict[str, str], *candidates: str) -> str:
    return next((c for c in candidates if row.get(c)), candidates[0])


def _flag(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered in _YES:
        return True
    if lowered in _NO:
        return False
    return None


def _straighten(expression: str) -> str:
    """Typographic quotes as straight ones, as pyxform does."""
    return expression.translate(_QUOTES)


@functools.lru_cache(maxsize=4096)
def _split_column(column: str) -> tuple[str, str]:
    """(key, language) of a column header: `label::English (en)`, `label:English` (a single
    colon, as many forms write it) and `label` (no language)."""
    if "::" in column:
        key, _, language = column.partition("::")
        return key.strip().lower(), language.strip()
    key, colon, language = column.partition(":")
    if colon and key.strip().lower() in TRANSLATABLE:
        return key.strip().lower(), language.strip()
    return column.strip().lower() if column.lower() != column else column.strip(), ""


_LANGUAGE = re.compile(LANGUAGE_TAG)
_RANGE_DEFAULTS = (("start", "1"), ("end", "10"), ("step", "1"))


@functools.lru_cache(maxsize=1024)
def _tag_of(language: str) -> str | None:
    """The form-language tag of a label language (`Swahili (sw)` → "sw", `pt-BR` → "pt-br"), or
    None when it has none fieldsync can hold (the language is then only a fallback text)."""
    tag = _language_tag(language).lower()
    return tag if _LANGUAGE.fullmatch(tag) else None


@functools.lru_cache(maxsize=1024)
def _language_tag(language: str) -> str:
    """The tag of a label language: `Swahili (sw)` → "sw", `French` → "fr", `中文` → "zh",
    otherwise a slug of the name."""
    text = language.strip()
    code = re.search(r"\(([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*)\)\s*$", text)
    if code:
        tag = code.group(1).replace("_", "-")
        return tag.lower() if "-" not in tag else tag.split("-")[0].lower() + tag[tag.index("-") :]
    lowered = text.lower()
    if lowered in KNOWN_LANGUAGES:
        return KNOWN_LANGUAGES[lowered]
    if re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*", text):
        return text
    for name, tag in KNOWN_LANGUAGES.items():
        if name in lowered:
            return tag
    return _slug(text) or "und"


def _slug(text: str) -> str | None:
    slug = re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")
    if not slug:
        return None
    if not slug[0].isalpha():
        slug = f"form_{slug}"
    slug = slug[:64].rstrip("_")
    return slug if len(slug) >= 2 else None


def _file_stem(filename: str | None) -> str | None:
    if not filename:
        return None
    base = re.split(r"[\\/]", filename)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    return stem.strip() or None


def _form_id_from_filename(filename: str | None) -> str | None:
    """The form id pyxform would take from the uploaded file's name, as a fieldsync form id."""
    stem = _file_stem(filename)
    return _slug(stem) if stem else None


def _csv_language(column: str) -> str:
    language = _split_column(column)[1]
    return (_tag_of(language) or _language_tag(language)) if language else ""


@functools.lru_cache(maxsize=1024)
def _attribute_name(column: str) -> str:
    """A choice attribute's name from a column header (`pop.` → `pop_`, `2020` → `_2020`)."""
    attribute = _INVALID_NAME_CHARS.sub("_", column)
    if not re.match(r"[A-Za-z_]", attribute):
        attribute = f"_{attribute}"
    return attribute[:64]


def _csv_choices(
    content: bytes,
    *,
    value_column: str = "name",
    label_columns: dict[str, list[str]] | None = None,
) -> tuple[list[dict[str, Any]], str | None, int]:
    """Choices from an attached CSV: the code from `value_column`, the label from `label` or
    `label::<language>` columns (or, for search(), from the columns `label_columns` names per
    language tag, "" for no language, joined by spaces), every other column an attribute (what
    a choice_filter reads); with the problem that makes the file unusable, if any, and how many
    attribute values were cut to `MAX_ATTRIBUTE_LENGTH` characters."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], "not UTF-8 text", 0
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or value_column not in reader.fieldnames:
        return [], f"the CSV needs a {value_column!r} column", 0
    choices: list[dict[str, Any]] = []
    cut = 0
    for row in reader:
        code = (row.get(value_column) or "").strip()
        if not code:
            continue
        if label_columns is None:
            labels = {
                _csv_language(k): (v or "").strip()
                for k, v in row.items()
                if k and _split_column(k)[0] == "label" and v
            }
        else:
            joined = {
                tag: " ".join((row.get(c) or "").strip() for c in columns).strip()
                for tag, columns in label_columns.items()
            }
            labels = {tag: text for tag, text in joined.items() if text}
        fallback = labels.get("") or next(iter(labels.values()), code)
        label = {"zh": labels.get("zh") or fallback, "en": labels.get("en") or fallback}
        label.update({t: v for t, v in labels.items() if t not in label and _LANGUAGE.fullmatch(t)})
        choice: dict[str, Any] = {"code": code, "label": label}
        attributes = {
            _attribute_name(k): v.strip()
            for k, v in row.items()
            if isinstance(k, str)
            and k != value_column
            and (label_columns is not None or _split_column(k)[0] != "label")
            and isinstance(v, str)
            and v.strip()
        }
        for key, value in attributes.items():
            if len(value) > MAX_ATTRIBUTE_LENGTH:
                attributes[key] = value[:MAX_ATTRIBUTE_LENGTH].rstrip()
                cut += 1
        if attributes:
            choice["attributes"] = attributes
        choices.append(choice)
    return choices, None, cut


_SELECT = re.compile(
    r"(select_one|select one|select1|select one from|select_multiple|select multiple|"
    r"select all that apply|select all that apply from|select_one_external|rank|"
    r"add select one prompt using|add select multiple prompt using)"
    r"\s+(\S+?)(\s+(?:or_other|or specify other))?",
    re.IGNORECASE,
)


def _select_type(raw_type: str) -> tuple[str, str, bool] | None:
    match = _SELECT.fullmatch(raw_type)
    if match is None:
        return None
    head = match.group(1).lower()
    if head in ("rank", "select_one_external"):
        kind = head
    elif "one" in head or head == "select1":
        kind = "select_one"
    else:
        kind = "select_multiple"
    return kind, match.group(2), match.group(3) is not None


# -- fieldsync's own columns: what forms.xlsform_writer writes beyond standard XLSForm -----------
# (`bind::fieldsync:<key>` survey columns — namespaced bind attributes, declared by the
# `namespaces` setting — for the field keys XLSForm has no column for, so that a definition
# exported as a workbook reads back the same.)

FIELDSYNC_COLUMN_PREFIX = "bind::fieldsync:"
TITLE_COLUMNS = ("form_title", "title", "set_form_title", "set form title")
FIELDSYNC_TITLE = "fieldsync:form_title"
_FIELDSYNC_KEYS = {
    "min": "bound",
    "max": "bound",
    "step": "bound",
    "min_length": "integer",
    "max_length": "integer",
    "min_count": "integer",
    "max_count": "integer",
    "pattern": "text",
    "value_type": "text",
    "media": "text",
    "required": "text",
    "choices": "choices",
}
"""`bind::fieldsync:<key>` → how its text becomes the field's `<key>`; an unknown key is read as
text and left for `load_definition` to refuse at its cell."""
_INTEGER_TEXT = re.compile(r"[+-]?\d+")
_DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?", re.IGNORECASE)


def _is_fieldsync_column(column: str) -> bool:
    return column.startswith(FIELDSYNC_COLUMN_PREFIX)


def _read_fieldsync_columns(row: dict[str, str], question: dict[str, Any]) -> None:
    """`bind::fieldsync:<key>` → the field's `<key>` (`min`, `max_length`, `media` …); a bad
    value is left for `load_definition` to refuse at its cell."""
    for column, value in row.items():
        if not _is_fieldsync_column(column):
            continue
        key = column[len(FIELDSYNC_COLUMN_PREFIX) :]
        kind = _FIELDSYNC_KEYS.get(key, "text")
        if kind == "choices":
            # `inline`: the select holds its list's choices itself.
            if value == "inline":
                question["_inline_choices"] = True
        elif kind == "bound":
            question[key] = _number(value)
        elif kind == "integer":
            question[key] = _integer(value)
        else:
            question[key] = value


def _number(value: str) -> int | float | str:
    """A number as the writer spelt it (`3` an int, `3.0` a float), else the text (a date, a
    time or a date-time bound)."""
    text = value.strip()
    if _INTEGER_TEXT.fullmatch(text):
        return int(text)
    if _DECIMAL_TEXT.fullmatch(text):
        return float(text)
    return value


def _integer(value: str) -> int | str:
    text = value.strip()
    return int(text) if _INTEGER_TEXT.fullmatch(text) else value


def _inline_choices(draft: dict[str, Any]) -> None:
    """A select marked `bind::fieldsync:choices inline` holds its list's choices itself."""
    lists = draft.get("choice_lists", {})
    inlined: set[str] = set()
    stack = list(draft.get("fields", []))
    while stack:
        question = stack.pop()
        stack.extend(question.get("fields", []))
        if question.pop("_inline_choices", False) and question.get("choices") in lists:
            inlined.add(question["choices"])
            question["choices"] = lists[question["choices"]]
    for name in inlined:
        del lists[name]


def issue_cells(content: bytes, issues: list[ImportIssue]) -> list[str | None]:
    """The text of each issue's cell as the import read it (None for an issue of a whole sheet
    or row, or when the workbook cannot be read): what the console shows next to the message.
    Never raises."""
    wanted = [i for i in issues if i.sheet and i.row and i.column]
    if not wanted or describe_non_workbook(content) is not None or _archive_problem(content):
        return [None] * len(issues)
    try:
        is_xlsx = content.startswith(b"PK")
        workbook = (read_xlsx(content) if is_xlsx else None) or get_xlsform(
            content, file_type=".xlsx" if is_xlsx else ".xls"
        )
        sheets = _sheets(workbook)
    except Exception:  # an unreadable workbook: the messages say so already
        return [None] * len(issues)
    values: list[str | None] = []
    for issue in issues:
        rows = sheets.get(issue.sheet) or []
        index = (issue.row or 0) - 2
        row = rows[index] if issue.column and 0 <= index < len(rows) else None
        value = row.get(issue.column) if isinstance(row, dict) and issue.column else None
        values.append(None if value is None else str(value))
    return values
