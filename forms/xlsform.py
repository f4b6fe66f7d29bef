"""XLSForm import: a workbook (survey, choices, settings and fieldsync's own `entities` sheet) read
with pyxform and translated into a draft fieldsync definition, with every problem located by
sheet, row and column.

Never drops an unsupported feature silently, never returns a draft that does not load, never
writes files or touches the database.
"""

from __future__ import annotations

import codecs
import copy
import io
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from pyxform.xls2json import workbook_to_json
from pyxform.xls2json_backends import definition_to_dict

from forms.compatibility import check_register_compatibility
from forms.definition_schema import load_definition
from forms.expressions import ExpressionSyntaxError, parse_expression
from forms.issues import DefinitionError, ValidationIssue
from forms.register import find_register_field

MAX_XLSFORM_BYTES = 10 * 1024 * 1024
MAX_SURVEY_ROWS = 5_000

SURVEY, CHOICES, SETTINGS, ENTITIES = "survey", "choices", "settings", "entities"
# What an upload must be, in the words messages use.
EXPECTED_WORKBOOK = "an XLSForm saved as an Excel workbook (.xlsx)"
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls and other Office 97–2003 files
_SNIFF_BYTES = 64 * 1024

TYPES = {
    "text": "text",
    "string": "text",
    "integer": "integer",
    "int": "integer",
    "decimal": "decimal",
    "date": "date",
    "datetime": "datetime",
    "boolean": "boolean",
    "geopoint": "geopoint",
    "image": "attachment",
    "photo": "attachment",
    "note": "note",
    "calculate": "calculated",
}
"""XLSForm question types and the fieldsync types they become (`boolean` is fieldsync's own)."""

UNSUPPORTED_TYPES = {
    "select_one_from_file": "choices from an external file",
    "select_multiple_from_file": "choices from an external file",
    "select_one_external": "external choices",
    "range": "range questions",
    "rank": "rank questions",
    "audio": "audio recordings",
    "video": "video recordings",
    "file": "file uploads",
    "barcode": "barcode scanning",
    "trigger": "acknowledge/trigger questions",
    "acknowledge": "acknowledge/trigger questions",
    "geotrace": "geotraces",
    "geoshape": "geoshapes",
    "background-audio": "background audio",
    "xml-external": "external XML instances",
    "csv-external": "external CSV instances",
    "hidden": "hidden fields",
    "begin_loop": "loops",
}
"""Question types with no fieldsync equivalent: blocking."""

METADATA_TYPES = frozenset(
    {
        "start",
        "end",
        "today",
        "deviceid",
        "username",
        "phonenumber",
        "simserial",
        "subscriberid",
        "audit",
        "start-geopoint",
        "email",
    }
)
"""ODK metadata questions: dropped with a note (submissions carry device, user and times)."""

IGNORED_COLUMNS = frozenset({"appearance", "autoplay", "rows"})
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
}
"""Columns whose content is dropped with a non-blocking report."""

BLOCKING_COLUMNS = {
    "repeat_count": "repeat_count is not supported: give the repeat min/max counts instead",
    "jr:count": "repeat_count is not supported: give the repeat min/max counts instead",
    "count": "repeat_count is not supported: give the repeat min/max counts instead",
    "parameters": "question parameters are not supported",
    "trigger": "triggers are not supported",
    "save_to": "ODK entities are not supported: use the fieldsync entities sheet",
    "body": "custom body attributes are not supported",
}
"""Columns whose content would change what is collected: blocking when used."""

BIND_COLUMNS = ("bind::fieldsync", "fieldsync::bind", "bind")
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
    """None when `content` is an `.xlsx` workbook (a ZIP archive holding `xl/workbook.xml`);
    otherwise what it looks like, for a message: "an empty file", "CSV text", "an Excel 97–2003
    workbook (.xls)", "a ZIP archive that is not an Excel workbook", … Reads only the archive's
    directory or the first 64 KiB; never raises."""
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
        return "an Excel 97–2003 workbook (.xls) or another old Office file"
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


def import_xlsform(content: bytes) -> ImportResult:
    """Translate an XLSForm workbook (`.xlsx` bytes) into a draft.

    The draft loads with `load_definition` and passes `check_register_compatibility`; otherwise
    the problems are returned as blocking issues located in the workbook. Anything but an `.xlsx`
    workbook (CSV, an old `.xls`, an empty file …) is one blocking issue saying what it is (see
    `describe_non_workbook`). See docs/forms.md for the column mapping and the list of
    unsupported features.
    """
    if len(content) > MAX_XLSFORM_BYTES:
        return _blocked(ImportIssue("", None, None, f"file larger than {MAX_XLSFORM_BYTES} bytes"))
    received = describe_non_workbook(content)
    if received is not None:
        return _blocked(ImportIssue("", None, None, f"{received}, not {EXPECTED_WORKBOOK}"))
    try:
        workbook = definition_to_dict(content)
    except Exception as err:  # pyxform raises many kinds of errors on arbitrary bytes
        return _blocked(ImportIssue("", None, None, f"not a readable XLSForm workbook: {err}"))
    if not workbook.get(SURVEY):
        return _blocked(ImportIssue(SURVEY, None, None, "the workbook has no survey sheet"))
    if len(workbook[SURVEY]) > MAX_SURVEY_ROWS:
        return _blocked(ImportIssue(SURVEY, None, None, f"more than {MAX_SURVEY_ROWS} rows"))
    translator = _Translator(workbook, _column_letters(content))
    translator.check_with_pyxform()
    draft = translator.translate()
    if any(issue.blocking for issue in translator.issues):
        return ImportResult(None, translator.issues)
    translator.check_draft(draft)
    blocked = any(issue.blocking for issue in translator.issues)
    return ImportResult(None if blocked else draft, translator.issues)


def _blocked(issue: ImportIssue) -> ImportResult:
    return ImportResult(None, [issue])


def _column_letters(content: bytes) -> dict[str, dict[str, str]]:
    """Header text → column letter, per sheet (empty when the file is not .xlsx)."""
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:  # not .xlsx (pyxform read it some other way): no letters
        return {}
    letters: dict[str, dict[str, str]] = {}
    try:
        for sheet in book.worksheets:
            header = next(sheet.iter_rows(min_row=1, max_row=1, values_only=True), ())
            letters[sheet.title] = {
                _SPACES.sub(" ", str(value).strip()): get_column_letter(index)
                for index, value in enumerate(header, start=1)
                if value is not None and str(value).strip()
            }
    finally:
        book.close()
    return letters


@dataclass
class _Scope:
    """An open repeat (or the top level) while reading the survey rows."""

    fields: list[dict[str, Any]]
    json_prefix: str
    path: tuple[str, ...]
    group_relevance: list[list[str]] = field(default_factory=lambda: [[]])
    repeat_row: int | None = None


class _Translator:
    def __init__(self, workbook: dict[str, Any], letters: dict[str, dict[str, str]]) -> None:
        self.workbook = workbook
        self.letters = letters
        self.issues: list[ImportIssue] = []
        self.field_rows: dict[str, int] = {}  # JSON path of a field → survey row
        self.entity_rows: dict[int, int] = {}
        self.choice_rows: dict[str, int] = {}
        self.repeat_paths: dict[str, str] = {}
        self.used_lists: set[str] = set()
        self.reported_columns: set[tuple[str, str]] = set()
        self.last_path = ""

    # -- reporting ------------------------------------------------------------------------

    def report(
        self, sheet: str, row: int | None, column: str | None, message: str, blocking: bool = True
    ) -> None:
        cell = None
        if column is not None:
            letter = self.letters.get(sheet, {}).get(column)
            if letter is not None:
                cell = f"{letter}{row if row is not None else 1}"
        self.issues.append(ImportIssue(sheet, row, column, message, blocking, cell))

    def rows(self, sheet: str) -> list[tuple[int, dict[str, str]]]:
        # pyxform keeps empty rows inside the data, so list index + 2 is the spreadsheet row.
        return [(index + 2, row) for index, row in enumerate(self.workbook.get(sheet) or []) if row]

    # -- pyxform's own structural checks -----------------------------------------------------

    def check_with_pyxform(self) -> None:
        # pyxform knows neither fieldsync's bind column nor its boolean type (checked as an
        # integer, which has the same structural rules).
        survey = [
            {
                k: ("integer" if k == "type" and _normalise(v) == "boolean" else v)
                for k, v in row.items()
                if k not in BIND_COLUMNS
            }
            for row in self.workbook[SURVEY]
        ]
        # pyxform rewrites the rows it is given, so it gets its own copy.
        workbook = {
            key: copy.deepcopy(value)
            for key, value in self.workbook.items()
            if key not in (ENTITIES, f"{ENTITIES}_header")
        }
        workbook[SURVEY] = survey
        warnings: list[str] = []
        try:
            workbook_to_json(workbook_dict=workbook, warnings=warnings)
        except Exception as err:  # PyXFormError, and whatever else odd sheets provoke
            self.report_pyxform(str(err), blocking=True)
        for warning in warnings:
            self.report_pyxform(warning, blocking=False)

    def report_pyxform(self, message: str, *, blocking: bool) -> None:
        match = re.search(r"\[row : (\d+)\]", message)
        row = int(match.group(1)) if match else None
        sheet = CHOICES if "choices" in message.lower() and row is None else SURVEY
        text = re.sub(r"\s+", " ", message.replace(match.group(0), "") if match else message)
        self.report(sheet, row, None, f"pyxform: {text.strip()}", blocking)

    # -- translation ------------------------------------------------------------------------

    def translate(self) -> dict[str, Any]:
        draft: dict[str, Any] = {}
        self.settings(draft)
        self.entities(draft)
        draft["fields"] = self.survey()
        draft["choice_lists"] = self.choices()
        _inline_choices(draft)
        self.calculated_value_types(draft)
        if not draft["choice_lists"]:
            del draft["choice_lists"]
        return draft

    def settings(self, draft: dict[str, Any]) -> None:
        rows = self.rows(SETTINGS)
        if not rows:
            self.report(SETTINGS, None, None, "no settings sheet: form_id is needed")
            return
        row_number, row = rows[0]
        for column, value in row.items():
            key = column.split("::")[0]
            if key in ("form_id", "id_string", "set form id"):
                draft["form_id"] = value
            elif key in _TITLE_COLUMNS:
                draft["title"] = value
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
                self.report(SETTINGS, row_number, column, "encrypted forms are not supported")
            elif key in ("default_language", "style", "namespaces", _FIELDSYNC_TITLE):
                continue
            else:
                self.report(
                    SETTINGS, row_number, column, f"setting {column!r} ignored", blocking=False
                )
        title = _fieldsync_title(self, row)
        if title is not None:
            draft["title"] = title
        if "form_id" not in draft:
            self.report(SETTINGS, row_number, "form_id", "form_id is missing")
        if "title" not in draft and "form_id" in draft:
            draft["title"] = draft["form_id"]
            self.report(
                SETTINGS,
                row_number,
                "form_title",
                "no form_title: the form id is used",
                blocking=False,
            )

    def entities(self, draft: dict[str, Any]) -> None:
        headers = set((self.workbook.get(f"{ENTITIES}_header") or [{}])[0])
        if headers & {"list_name", "label", "create_if", "update_if", "entity_id"}:
            self.report(
                ENTITIES,
                None,
                None,
                "this is an ODK entities sheet; fieldsync's has the columns "
                "name, type, id_field, create, repeat, parent",
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
        for row_number, row in self.rows(SURVEY):
            self.survey_columns(row_number, row)
            raw_type = _normalise(row.get("type", ""))
            if not raw_type:
                if row.get("name"):
                    self.report(SURVEY, row_number, "type", "a row with a name needs a type")
                continue
            scope = stack[-1]
            if raw_type in ("begin_group", "begin group"):
                relevant = row.get("relevant") or row.get("relevance")
                scope.group_relevance.append([f"({relevant})"] if relevant else [])
                if relevant:
                    self.expression(row_number, _column(row, "relevant", "relevance"), relevant)
                continue
            if raw_type in ("end_group", "end group"):
                if len(scope.group_relevance) > 1:
                    scope.group_relevance.pop()
                else:
                    self.report(SURVEY, row_number, "type", "end_group without begin_group")
                continue
            if raw_type in ("begin_repeat", "begin repeat"):
                repeat = self.question(row_number, row, "repeat", scope)
                if repeat is not None:
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
            if raw_type in ("end_repeat", "end repeat"):
                if len(stack) > 1:
                    stack.pop()
                else:
                    self.report(SURVEY, row_number, "type", "end_repeat without begin_repeat")
                continue
            fieldsync_type = self.field_type(row_number, raw_type, row)
            if fieldsync_type is None:
                continue
            self.question(row_number, row, fieldsync_type, scope)
        for open_scope in stack[1:]:
            self.report(SURVEY, open_scope.repeat_row, "type", "begin_repeat without end_repeat")
        return root.fields

    def survey_columns(self, row_number: int, row: dict[str, str]) -> None:
        for column in row:
            key, _, language = column.partition("::")
            key = key.strip()
            if column in BIND_COLUMNS or key in IGNORED_COLUMNS or _is_fieldsync_column(column):
                continue
            if key in BLOCKING_COLUMNS:
                self.report(SURVEY, row_number, column, BLOCKING_COLUMNS[key])
            elif key in ("label", "hint", "constraint_message", "constraint message"):
                if language and _language(language) is None:
                    self.report_column_once(
                        column, f"language {language!r} dropped: labels are Chinese and English"
                    )
            elif key in DROPPED_COLUMNS or key.startswith("media"):
                self.report_column_once(column, DROPPED_COLUMNS.get(key, "media not supported"))
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
                self.report_column_once(column, f"unknown column {column!r} ignored")

    def report_column_once(self, column: str, message: str) -> None:
        if (SURVEY, column) not in self.reported_columns:
            self.reported_columns.add((SURVEY, column))
            self.report(SURVEY, 1, column, message, blocking=False)

    def field_type(self, row_number: int, raw_type: str, row: dict[str, str]) -> str | None:
        head = raw_type.partition(" ")[0]
        if head == "file" and row.get(FIELDSYNC_MEDIA_COLUMN):
            return "attachment"
        if head in UNSUPPORTED_TYPES or raw_type in UNSUPPORTED_TYPES:
            what = UNSUPPORTED_TYPES.get(head) or UNSUPPORTED_TYPES[raw_type]
            self.report(SURVEY, row_number, "type", f"{head} is not supported ({what})")
            return None
        if head in METADATA_TYPES:
            self.report(
                SURVEY,
                row_number,
                "type",
                f"{head}: metadata is dropped (submissions already carry device, user and times)",
                blocking=False,
            )
            return None
        select = _select_type(raw_type)
        if select is not None:
            kind, list_name, or_other = select
            if or_other:
                self.report(SURVEY, row_number, "type", "or_other is not supported")
                return None
            self.used_lists.add(list_name)
            return f"{kind} {list_name}"
        if raw_type.lower() in TYPES:
            return TYPES[raw_type.lower()]
        self.report(SURVEY, row_number, "type", f"unknown question type {raw_type!r}")
        return None

    def question(
        self, row_number: int, row: dict[str, str], fieldsync_type: str, scope: _Scope
    ) -> dict[str, Any] | None:
        name = row.get("name")
        if not name:
            self.report(SURVEY, row_number, "name", "a question needs a name")
            return None
        kind, _, list_name = fieldsync_type.partition(" ")
        question: dict[str, Any] = {"name": name, "type": kind}
        if list_name:
            question["choices"] = list_name
        text_columns: tuple[tuple[str, tuple[str, ...]], ...] = (
            ("label", ("label",)),
            ("hint", ("hint",)),
        )
        for key, columns in text_columns:
            text = self.bilingual(row, columns)
            if text is not None:
                question[key] = text
        if kind == "attachment":
            question["media"] = "signature" if "signature" in row.get("appearance", "") else "photo"
        required = row.get("required")
        if required is not None:
            flag = _flag(required)
            if flag is None:
                self.expression(row_number, "required", required)
                question["required"] = required
            elif flag:
                question["required"] = True
        relevance = [part for group in scope.group_relevance for part in group]
        own_relevant = row.get("relevant") or row.get("relevance")
        if own_relevant:
            self.expression(row_number, _column(row, "relevant", "relevance"), own_relevant)
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
            if key == "calculation" and kind != "calculated":
                self.report(
                    SURVEY, row_number, column, "a calculation on a question is not supported"
                )
                continue
            self.expression(row_number, column, row[column], current=current, choice=choice)
            question[key] = row[column]
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
        default: str | None = None
        texts: dict[str, str] = {}
        for column, value in row.items():
            key, _, language = column.partition("::")
            if key.strip() not in keys:
                continue
            if not language:
                default = value
            else:
                code = _language(language)
                if code is not None:
                    texts[code] = value
        zh = texts.get("zh") or default or texts.get("en")
        en = texts.get("en") or default or texts.get("zh")
        if zh is None or en is None:
            return None
        return {"zh": zh, "en": en}

    def expression(
        self,
        row_number: int,
        column: str,
        source: str,
        *,
        current: bool = False,
        choice: bool = False,
    ) -> None:
        try:
            parse_expression(source, allow_current=current, allow_choice_properties=choice)
        except ExpressionSyntaxError as err:
            self.report(SURVEY, row_number, column, f"expression not supported: {err}")

    def choices(self) -> dict[str, list[dict[str, Any]]]:
        lists: dict[str, list[dict[str, Any]]] = {}
        for row_number, row in self.rows(CHOICES):
            list_name = row.get("list_name") or row.get("list name")
            if not list_name or list_name not in self.used_lists:
                continue
            code = row.get("name") or row.get("value")
            if code is None:
                self.report(CHOICES, row_number, "name", "a choice needs a name")
                continue
            choice: dict[str, Any] = {"code": code}
            label = self.bilingual(row, ("label",))
            choice["label"] = label if label is not None else {"zh": code, "en": code}
            attributes: dict[str, str] = {}
            for column, value in row.items():
                key = column.partition("::")[0]
                if key in ("list_name", "list name", "name", "value", "label"):
                    continue
                if key.startswith("media") or key in ("image", "audio", "video", "big-image"):
                    if (CHOICES, column) not in self.reported_columns:
                        self.reported_columns.add((CHOICES, column))
                        self.report(CHOICES, 1, column, "media not supported", blocking=False)
                    continue
                attributes[column] = value
            if attributes:
                choice["attributes"] = attributes
            self.choice_rows.setdefault(list_name, row_number)
            lists.setdefault(list_name, []).append(choice)
        for missing in sorted(self.used_lists - lists.keys()):
            self.report(CHOICES, None, "list_name", f"no choices for list {missing!r}")
        return lists

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
        try:
            definition = load_definition(draft)
        except DefinitionError as err:
            for issue in err.issues:
                self.locate(issue)
            return
        for issue in check_register_compatibility(definition):
            self.locate(issue)

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
        choice_list = re.match(r"choice_lists\.([^.\[]+)", path)
        if choice_list:
            self.report(CHOICES, self.choice_rows.get(choice_list.group(1)), None, issue.message)
            return
        field_path = re.match(r"((?:fields\[\d+\]\.?)+)(?:\.?(\w+))?", path)
        if field_path:
            json_path = field_path.group(1).rstrip(".")
            key = field_path.group(2)
            column = _SURVEY_COLUMN_FOR_KEY.get(key or "", key)
            self.report(SURVEY, self.field_rows.get(json_path), column, issue.message)
            return
        sheet_column = {"form_id": "form_id", "title": "form_title", "version": "version"}
        key = path.split(".")[0].split("[")[0]
        if key in sheet_column:
            self.report(SETTINGS, 2, sheet_column[key], issue.message)
        else:
            self.report(SURVEY, None, None, f"{path}: {issue.message}")


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


def _language(suffix: str) -> str | None:
    lowered = suffix.strip().lower()
    if "(zh" in lowered or lowered.startswith("zh") or "chinese" in lowered or "中文" in lowered:
        return "zh"
    if "(en" in lowered or lowered in ("en", "english") or "english" in lowered:
        return "en"
    return None


_SELECT = re.compile(
    r"(select_one|select one|select1|select_multiple|select multiple|select all that apply)"
    r"\s+([A-Za-z_][A-Za-z0-9_.-]*)(\s+or_other)?"
)


def _select_type(raw_type: str) -> tuple[str, str, bool] | None:
    match = _SELECT.fullmatch(raw_type)
    if match is None:
        return None
    kind = (
        "select_one"
        if match.group(1) in ("select_one", "select one", "select1")
        else ("select_multiple")
    )
    return kind, match.group(2), match.group(3) is not None


# -- fieldsync's own columns: what forms.xlsform_writer writes beyond standard XLSForm -----------
# (`bind::fieldsync:<key>` survey columns, bilingual `form_title::<language>`; kept apart from
# the translation above so that a definition exported as a workbook reads back the same.)

FIELDSYNC_COLUMN_PREFIX = "bind::fieldsync:"
FIELDSYNC_MEDIA_COLUMN = f"{FIELDSYNC_COLUMN_PREFIX}media"
_TITLE_COLUMNS = ("form_title", "title", "set form title")
_FIELDSYNC_TITLE = "fieldsync:form_title"
_FIELDSYNC_KEYS = {
    "min": "bound",
    "max": "bound",
    "min_length": "integer",
    "max_length": "integer",
    "min_count": "integer",
    "max_count": "integer",
    "pattern": "text",
    "value_type": "text",
    "media": "text",
    "choices": "text",
    "required": "text",
}
_INTEGER_TEXT = re.compile(r"[+-]?\d+")


def _is_fieldsync_column(column: str) -> bool:
    return column.startswith(FIELDSYNC_COLUMN_PREFIX)


def _read_fieldsync_columns(row: dict[str, str], question: dict[str, Any]) -> None:
    """`bind::fieldsync:<key>` → the field's `<key>` (`min`, `max_length`, `media` …); an
    unknown key or a bad value is left for `load_definition` to refuse at its cell."""
    for column, value in row.items():
        if not _is_fieldsync_column(column):
            continue
        key = column[len(FIELDSYNC_COLUMN_PREFIX) :]
        kind = _FIELDSYNC_KEYS.get(key)
        if key == "choices":
            if value == "inline":
                question["_inline_choices"] = True
            continue
        if kind in ("bound", "integer"):
            question[key] = _number(value) if kind == "bound" else _integer(value)
        else:
            question[key] = value


def _number(value: str) -> int | float | str:
    text = value.strip()
    if _INTEGER_TEXT.fullmatch(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return value  # a date or datetime bound
    return number if re.fullmatch(r"[+-]?[\d.]+(?:e[+-]?\d+)?", text, re.IGNORECASE) else value


def _integer(value: str) -> int | str:
    text = value.strip()
    return int(text) if _INTEGER_TEXT.fullmatch(text) else value


def _fieldsync_title(translator: _Translator, row: dict[str, str]) -> dict[str, str] | None:
    """`fieldsync:form_title::Chinese (zh)` and `…::English (en)` (or `form_title::…`) as a
    bilingual title."""
    keys = (*_TITLE_COLUMNS, _FIELDSYNC_TITLE)
    if not any("::" in column and column.partition("::")[0] in keys for column in row):
        return None
    return translator.bilingual(row, keys)


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
