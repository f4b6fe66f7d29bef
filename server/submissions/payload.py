"""Sensitive values in stored submissions: identity numbers and phones are kept the way the
register keeps them — a masked form to show, AES-GCM ciphertext to reveal, and for a whole value
the register's keyed hash — never in clear, in the payload, the errors or the stored result.

What is protected (one walk of the document, cheap for the usual visit):

- the answers a known form binds to a sensitive text field of the register (`member.id_number`,
  `member.phone`), whatever they look like;
- anywhere, in any value or key: a string holding a run of digits that looks like a PRC identity
  number (18 characters, 17 digits and a digit or X; or the old 15 digits) or a mobile number
  (11 digits starting 13–19), the run not touching other digits (full-width digits count); and a
  JSON number whose digits are such a run. Attachment digests (`sha256:` + hex) are names of
  files, not personal data, and are left as they are.

A protected value becomes a marker `{"$sensitive": kind, "masked": …, "cipher": …[, "hash": …]}`
whose ciphertext holds the original JSON value, bound to the submission's id. An object with a
sensitive-looking key (or the marker key itself, which only the server may write) is protected
as a whole. Nothing here ever returns a clear value except `shown_payload(..., reveal=True)`,
whose callers audit it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson
from sqlalchemy import Table, select, update
from sqlalchemy.engine import Connection

from forms.definition import Field, FormDefinition
from forms.register import find_register_field
from server.forms.models import FormVersion
from server.forms.service import published_definition
from server.json_codec import received_document, stored_document
from server.sensitive import MASKED_KINDS, SensitiveCodec, mask_id_number
from server.sensitive import mask as mask_kind
from server.submissions.models import Submission

MARK = "$sensitive"
# The kinds of marker: a register field's name, or `text` for a value that holds sensitive parts.
TEXT = "text"
# Every maximal run of 11 or more digits (with an identity number's final X); which of them are
# sensitive is decided by `_kind_of` (a regular expression with look-arounds and alternatives is
# tens of times slower on a visit's text). `\d` is any Unicode digit: tablets' input methods type
# full-width ones too.
_LONG_RUN = re.compile(
    r"\d{11,}[XxＸｘ]?"
    # …or the same written in groups of digits joined by single spaces or dashes, as people
    # write a phone (`139-0771-1234`) or an identity number (`452802 19780312 001X`). A group
    # has at most 8 digits and the run stands apart from letters and digits, so a clock value
    # (`1763795400123-00002-…`) or a UUID is never taken for one.
    r"|(?<![0-9A-Za-z])\d{1,8}(?:[ \-]\d{1,8})+[XxＸｘ]?(?![0-9A-Za-z])"
)
_SEPARATORS = re.compile(r"[ \-]")
# A `\uXXXX` escape in JSON text, kept apart from the digits around it.
_JSON_ESCAPE = re.compile(r"(\\u[0-9A-Fa-f]{4})")
# The grouped form in a document's UTF-8 JSON text (ASCII digits; full-width ones walk anyway).
_GROUPED_RUN = re.compile(rb"(?<![0-9A-Za-z])[0-9]{1,8}(?:[ \-][0-9]{1,8})+[Xx]?(?![0-9A-Za-z])")
_ID_CHECK_LETTERS = frozenset("XxＸｘ")
_PHONE_SECOND_DIGITS = frozenset("3456789３４５６７８９")
# In a document's UTF-8 JSON text: a number of 11 to 18 digits written with an exponent
# (orjson does from 1e16 on), a full-width digit, the marker key.
_EXPONENT = re.compile(rb"[0-9]e\+1[0-7]")
_FULL_WIDTH_DIGIT = re.compile(b"\xef\xbc[\x90-\x99]")
_MARK_BYTES = MARK.encode()
_DIGITS_TO_NINES = bytes.maketrans(b"0123456789", b"9" * 10)
_NINE = ord("9")
_ELEVEN_NINES = b"9" * 11
_SHORTEST = 11
_LONGEST = 18
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# JSON numbers of 11 to 18 digits: the only ones whose digits can be a sensitive run.
_NUMBER_LOW, _NUMBER_HIGH = 10**10, 10**18
# Deeper than this, a part of a document is protected as a whole (a visit is a few levels deep).
_MAX_DEPTH = 64

# Answers bound to sensitive fields, by form version content hash: a tree of answer names, each
# a register field name (a bound answer) or a subtree (a repeat's answers).
Tree = dict[str, "str | Tree"]
_trees: dict[str, Tree] = {}


def protect_submission_row(
    codec: SensitiveCodec,
    forms: Mapping[tuple[str, int], FormVersion],
    row: dict[str, Any],
) -> dict[str, Any]:
    """A `submissions` row as push built it, ready to store: sensitive values in its `payload`
    protected (ciphertext and mask; `forms` tells which answers are bound to sensitive register
    fields), and masked in its `errors`, `quarantine_reason`, stored `result`, `form_id` and
    `hlc`. The
    `content_hash` — the fingerprint of the raw item — is left as it is, so a re-send is still
    recognised. `row` itself is not changed."""
    return _protected_row(codec, forms, row, trusts_markers=False)


def _protected_row(
    codec: SensitiveCodec,
    forms: Mapping[tuple[str, int], Any],
    row: dict[str, Any],
    *,
    trusts_markers: bool,
) -> dict[str, Any]:
    payload = row["payload"]
    tree = _tree_for(forms, payload) if isinstance(payload, dict) else None
    protected = dict(row)
    if tree or _may_hold_sensitive(payload):
        sealer = _Sealer(codec, str(row["instance_id"]), trusts_markers=trusts_markers)
        protected["payload"] = sealer.protect(payload, {"data": tree} if tree else None)
    # Columns copied from an unreadable item as sent (its form id, its clock) are masked too.
    for column in ("form_id", "hlc"):
        if isinstance(row.get(column), str):
            protected[column] = masked_text(row[column])
    protected["errors"] = masked_value(row["errors"])
    protected["result"] = masked_value(row["result"])
    reason = row.get("quarantine_reason")
    if reason is not None:
        protected["quarantine_reason"] = masked_text(reason)
    return protected


@dataclass(frozen=True)
class ShownPayload:
    payload: Any
    revealed: list[str]  # the kinds of the values revealed (empty when masked)


def shown_payload(
    codec: SensitiveCodec, payload: Any, instance_id: uuid.UUID | str, *, reveal: bool
) -> ShownPayload:
    """A stored payload as people see it: each protected value as its mask, or with `reveal` its
    original value (the caller must be allowed to reveal, and audits it). A clear sensitive-looking
    value (a row stored before protection existed) is masked too unless revealed. A payload kept
    as escaped JSON text (it held what no database accepts as JSON) is shown the same way, and
    stays escaped."""
    revealed: list[str] = []
    document = received_document(payload) if isinstance(payload, dict) else payload
    escaped = document is not payload
    shown = _show(codec, str(instance_id), document, reveal, revealed, 0)
    return ShownPayload(stored_document(shown) if escaped else shown, revealed)


def sent_payload(codec: SensitiveCodec, payload: Any, instance_id: uuid.UUID | str) -> Any:
    """Exactly what the device sent, from a stored payload (sensitive values in clear: for the
    server's own use, never for a response without an audited reveal)."""
    document = received_document(payload) if isinstance(payload, dict) else payload
    return _show(codec, str(instance_id), document, True, [], 0)


def masked_value(value: Any) -> Any:
    """`value` with every sensitive-looking run in its strings and keys masked (no ciphertext:
    for texts derived from a payload, such as error messages, whose original stays protected in
    the payload)."""
    return _masked_copy(value, None, 0) if _may_hold_sensitive(value) else value


def masked_text(text: str) -> str:
    """`text` with every identity number and mobile number in it masked."""
    if len(text) < _SHORTEST or _DIGEST.fullmatch(text):
        return text
    if "\\u" in text:
        # JSON text (an error's path quoting a key): an escape such as `\u0000` ends in digits
        # that would hide the number after it.
        pieces = _JSON_ESCAPE.split(text)
        return "".join(
            piece if index % 2 else _LONG_RUN.sub(_mask_match, piece)
            for index, piece in enumerate(pieces)
        )
    return _LONG_RUN.sub(_mask_match, text)


def looks_sensitive(text: str) -> bool:
    """Whether `text` holds an identity number or mobile number (and is not a digest)."""
    if len(text) < _SHORTEST:
        return False
    pieces = _JSON_ESCAPE.split(text)[::2] if "\\u" in text else [text]
    found = any(_kind_of(run.group()) for piece in pieces for run in _LONG_RUN.finditer(piece))
    return found and _DIGEST.fullmatch(text) is None


def sensitive_answers(definition: FormDefinition) -> Tree:
    """The answers of `definition` bound to sensitive text fields of the register (kept protected
    there), as a tree: answer name → register field name, or a repeat's name → its subtree."""
    entity_types = {entity.name: entity.type for entity in definition.entities}
    tree: Tree = {}

    def visit(fields: tuple[Field, ...], into: Tree) -> None:
        for f in fields:
            if f.fields:
                subtree: Tree = {}
                visit(f.fields, subtree)
                if subtree:
                    into[f.name] = subtree
            if f.binding is None:
                continue
            entity, register_name = f.binding
            spec = find_register_field(entity_types.get(entity, ""), register_name)
            if spec is not None and spec.sensitive and spec.kind == "text":
                into[f.name] = register_name

    visit(definition.fields, tree)
    return tree


def _tree_for(forms: Mapping[tuple[str, int], Any], payload: dict[str, Any]) -> Tree | None:
    form_id, version = payload.get("form_id"), payload.get("form_version")
    if not isinstance(form_id, str) or not isinstance(version, int) or isinstance(version, bool):
        return None
    row = forms.get((form_id, version))
    if row is None:
        return None
    tree = _trees.get(row.content_hash)
    if tree is None:
        # Published versions never change: the tree of one content hash is always the same.
        tree = _trees[row.content_hash] = sensitive_answers(published_definition(row))
    return tree or None


# --- protecting ---------------------------------------------------------------------------------


class _Sealer:
    """Turns sensitive values into markers whose ciphertext is bound to one submission."""

    def __init__(
        self, codec: SensitiveCodec, context: str, *, trusts_markers: bool = False
    ) -> None:
        self.codec = codec
        self.context = context
        # Re-protecting a stored payload: markers made by the server are kept as they are.
        self.trusts_markers = trusts_markers

    def protect(self, value: Any, tree: Tree | None, depth: int = 0) -> Any:
        """`value` with its sensitive parts as markers; the same object when nothing changed."""
        if isinstance(value, str):
            if len(value) < _SHORTEST or not looks_sensitive(value):
                return value
            return self.text(value)
        if isinstance(value, dict):
            return self.mapping(value, tree, depth)
        if isinstance(value, list):
            if depth >= _MAX_DEPTH:
                return self.whole(value, None, depth)
            changed: list[Any] | None = None
            for index, element in enumerate(value):
                new = self.protect(element, tree, depth + 1)
                if new is not element:
                    changed = changed if changed is not None else list(value)
                    changed[index] = new
            return changed if changed is not None else value
        if isinstance(value, int | float) and not isinstance(value, bool):
            digits = _number_digits(value)
            kind = _sensitive_kind(digits) if digits is not None else None
            if digits is not None and kind is not None:
                return self.marker(kind, value, mask(kind, digits))
        return value

    def mapping(self, value: dict[str, Any], tree: Tree | None, depth: int) -> Any:
        if MARK in value:
            if self.trusts_markers and self.is_ours(value):
                return value
            return self.whole(value, tree, depth)
        if depth >= _MAX_DEPTH:
            return self.whole(value, tree, depth)
        changed: dict[str, Any] | None = None
        for key, element in value.items():
            if len(key) >= _SHORTEST and looks_sensitive(key):
                return self.whole(value, tree, depth)
            bound = tree.get(key) if tree else None
            if isinstance(bound, str):
                new = self.bound(bound, element, depth)
            else:
                new = self.protect(element, bound, depth + 1)
            if new is not element:
                changed = changed if changed is not None else dict(value)
                changed[key] = new
        return changed if changed is not None else value

    def bound(self, kind: str, value: Any, depth: int) -> Any:
        """An answer bound to the sensitive register field `kind`: protected whatever it holds."""
        if value is None or value == "":
            return value
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            text = value if isinstance(value, str) else str(value)
            return self.marker(kind, value, mask(kind, text), hashed=text)
        return self.protect(value, None, depth + 1)

    def text(self, value: str) -> dict[str, Any]:
        kind = _sensitive_kind(value)
        if kind is not None:
            return self.marker(kind, value, mask(kind, _SEPARATORS.sub("", value)), hashed=value)
        return self.marker(TEXT, value, masked_text(value))

    def whole(self, value: Any, tree: Tree | None, depth: int) -> Any:
        if depth >= _MAX_DEPTH and not _holds_sensitive_deep(value):
            return value  # nesting only, nothing to protect
        return self.marker(TEXT, value, _masked_copy(value, tree, depth))

    def marker(
        self, kind: str, value: Any, masked: Any, *, hashed: str | None = None
    ) -> dict[str, Any]:
        sealed = self.codec.seal(_json_text(value), self.context)
        marker = {MARK: kind, "masked": masked, "cipher": sealed}
        if hashed is not None and kind in MASKED_KINDS:
            marker["hash"] = self.codec.lookup_hash(kind, hashed)
        return marker

    def is_ours(self, value: dict[str, Any]) -> bool:
        cipher = value.get("cipher")
        return (
            set(value) <= {MARK, "masked", "cipher", "hash"}
            and isinstance(cipher, str)
            and self.codec.unseal(cipher, self.context) is not None
        )


def _masked_copy(value: Any, tree: Tree | None, depth: int) -> Any:
    if isinstance(value, str):
        return masked_text(value)
    if depth >= _MAX_DEPTH * 2:
        return "…"
    if isinstance(value, dict):
        copy: dict[str, Any] = {}
        for key, element in value.items():
            bound = tree.get(key) if tree else None
            if isinstance(bound, str) and isinstance(element, str | int | float) and element != "":
                copy[masked_text(key)] = mask(bound, str(element))
            else:
                copy[masked_text(key)] = _masked_copy(
                    element, bound if isinstance(bound, dict) else None, depth + 1
                )
        return copy
    if isinstance(value, list):
        return [_masked_copy(element, tree, depth + 1) for element in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        digits = _number_digits(value)
        kind = _sensitive_kind(digits) if digits is not None else None
        if digits is not None and kind is not None:
            return mask(kind, digits)
    return value


def mask(kind: str, value: str) -> str:
    """The masked form of a sensitive value of `kind`; a register field without a mask of its
    own is masked like an identity number."""
    return mask_kind(kind, value) if kind in MASKED_KINDS else mask_id_number(value)


def _may_hold_sensitive(value: Any) -> bool:
    """False only if nothing in `value` can need protection: the fast path of a visit, decided on
    its JSON text in one pass (a false alarm, such as digits in a digest, only costs the walk)."""
    try:
        data = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # a lone surrogate, a huge integer: walk it
        return True
    if _MARK_BYTES in data or _FULL_WIDTH_DIGIT.search(data):
        return True
    if b"\\u" in data:  # a control character, whose `\u00XX` escape could hide a number after it
        return True
    if b"e+1" in data and _EXPONENT.search(data):
        return True
    # Runs of ASCII digits, found by turning every digit into a 9 (a regular expression over
    # the whole text costs ten times more).
    nines = data.translate(_DIGITS_TO_NINES)
    start = nines.find(_ELEVEN_NINES)
    while start >= 0:
        end = start + _SHORTEST
        while end < len(nines) and nines[end] == _NINE:
            end += 1
        if start == 0 or nines[start - 1] != _NINE:
            run = data[start : end + 1 if data[end : end + 1] in (b"X", b"x") else end]
            if _kind_of(run.decode()):
                return True
        start = nines.find(_ELEVEN_NINES, end)
    return any(_kind_of(run.group().decode()) for run in _GROUPED_RUN.finditer(data))


def _holds_sensitive_deep(value: Any) -> bool:
    """Whether any string, key or number in `value` looks sensitive, however deep (no recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if MARK in item or any(looks_sensitive(key) for key in item):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if looks_sensitive(item):
                return True
        elif isinstance(item, int | float) and not isinstance(item, bool):
            digits = _number_digits(item)
            if digits is not None and _sensitive_kind(digits):
                return True
    return False


def _kind_of(run: str) -> str | None:
    """`id_number` or `phone` if the run of digits (from `_LONG_RUN`) is one, or for a run
    written in groups holds one, else None."""
    if " " in run or "-" in run:
        return _kind_of_groups(_SEPARATORS.split(run))
    size = len(run)
    if run[-1] in _ID_CHECK_LETTERS:
        # An identity number's check letter, or a letter after some other run of digits.
        return "id_number" if size == 18 else _kind_of(run[:-1])
    if size in (15, 18):
        return "id_number"
    if size == _SHORTEST and run[0] in "1１" and run[1] in _PHONE_SECOND_DIGITS:
        return "phone"
    return None


def _kind_of_groups(groups: list[str]) -> str | None:
    """The kind of the first number that whole neighbouring groups of digits spell, if any."""
    for first in range(len(groups)):
        digits = ""
        for group in groups[first:]:
            digits += group
            if len(digits) > _LONGEST:
                break
            kind = _kind_of(digits) if len(digits) >= _SHORTEST else None
            if kind is not None:
                return kind
    return None


def _sensitive_kind(text: str) -> str | None:
    """The kind of `text` if the whole of it is one identity number or phone."""
    match = _LONG_RUN.fullmatch(text)
    return _kind_of(text) if match else None


def _mask_match(match: re.Match[str]) -> str:
    run = match.group(0)
    kind = _kind_of(run)
    return mask(kind, _SEPARATORS.sub("", run)) if kind else run


def _number_digits(value: int | float) -> str | None:
    if isinstance(value, float):
        if not (value.is_integer() and _NUMBER_LOW <= abs(value) < _NUMBER_HIGH):
            return None
        value = int(value)
    if not _NUMBER_LOW <= abs(value) < _NUMBER_HIGH:
        return None
    return str(abs(value))


def _json_text(value: Any) -> str:
    # ASCII JSON: lone surrogates and NUL characters survive encryption and come back as sent.
    try:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    except RecursionError:  # nested nearly as deep as a JSON text can be read
        return _json_text_without_recursion(value)


def _json_text_without_recursion(value: Any) -> str:
    """`json.dumps(value, ensure_ascii=True, separators=(",", ":"))` with an explicit stack."""
    parts: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Literal):
            parts.append(item.text)
        elif isinstance(item, dict):
            parts.append("{")
            stack.append(_Literal("}"))
            for index, (key, element) in reversed(list(enumerate(item.items()))):
                stack.append(element)
                separator = "," if index else ""
                stack.append(_Literal(f"{separator}{json.dumps(str(key))}:"))
        elif isinstance(item, list):
            parts.append("[")
            stack.append(_Literal("]"))
            for index, element in reversed(list(enumerate(item))):
                stack.append(element)
                if index:
                    stack.append(_Literal(","))
        else:
            parts.append(json.dumps(item))
    return "".join(parts)


@dataclass(frozen=True)
class _Literal:
    text: str


# --- showing ------------------------------------------------------------------------------------


def _show(
    codec: SensitiveCodec, context: str, value: Any, reveal: bool, revealed: list[str], depth: int
) -> Any:
    if isinstance(value, str):
        if not reveal:
            return masked_text(value)
        if looks_sensitive(value):  # a clear value in a row stored before protection existed
            revealed.append(TEXT)
        return value
    if depth >= _MAX_DEPTH * 2 and isinstance(value, dict | list):
        # Deeper than anything the server stores unprotected: shown as is when nothing in it
        # looks sensitive (or when revealing), else as a placeholder.
        return value if reveal or not _holds_sensitive_deep(value) else "…"
    if isinstance(value, dict):
        if MARK in value and "masked" in value:
            kind = str(value[MARK])
            cipher = value.get("cipher")
            if reveal and isinstance(cipher, str):
                text = codec.unseal(cipher, context)
                if text is not None:
                    try:
                        original = json.loads(text)
                    except RecursionError:  # nested too deep to show here: stays masked
                        pass
                    else:
                        revealed.append(kind)
                        return original
            return _masked_copy(value["masked"], None, 0)
        return {
            _show(codec, context, key, reveal, revealed, depth): _show(
                codec, context, element, reveal, revealed, depth + 1
            )
            for key, element in value.items()
        }
    if isinstance(value, list):
        return [_show(codec, context, element, reveal, revealed, depth + 1) for element in value]
    if reveal:
        return value
    return _masked_copy(value, None, 0)


# --- existing rows ------------------------------------------------------------------------------


def protect_stored_submissions(
    connection: Connection, codec: SensitiveCodec, *, batch_size: int = 500
) -> int:
    """Protect the sensitive values of every stored submission as push does now (payload, errors,
    reason, result); idempotent (markers already made are kept). Runs in the caller's
    transaction, a page at a time. The number of rows changed."""
    submissions = cast(Table, Submission.__table__)
    forms = {
        (row.form_id, row.version): row
        for row in connection.execute(
            select(
                FormVersion.form_id,
                FormVersion.version,
                FormVersion.content_hash,
                FormVersion.definition,
            )
        )
    }
    names = ("instance_id", "payload", "errors", "result", "quarantine_reason", "form_id", "hlc")
    columns = tuple(submissions.c[name] for name in names)
    changed = 0
    for page in _pages(connection, columns, submissions.c.instance_id, batch_size):
        for values in page:
            before = dict(zip(names, values, strict=True))
            after = _protected_row(codec, forms, before, trusts_markers=True)
            if after != before:
                instance_id = after.pop("instance_id")
                connection.execute(
                    update(submissions)
                    .where(submissions.c.instance_id == instance_id)
                    .values(**after)
                )
                changed += 1
    return changed


def _pages(
    connection: Connection, columns: tuple[Any, ...], key: Any, size: int
) -> Iterator[list[Any]]:
    last: uuid.UUID | None = None
    while True:
        statement = select(*columns).order_by(key).limit(size)
        if last is not None:
            statement = statement.where(key > last)
        rows = list(connection.execute(statement))
        if not rows:
            return
        yield rows
        last = rows[-1][0]
