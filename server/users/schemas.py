"""Shapes of the users API (administrators): the listing's query, the bodies of create, grant and
password reset, and a user as answered — never with a password or its hash."""

from __future__ import annotations

import re
from typing import TypeVar

from marshmallow import fields

from forms.register import LabelledEnum
from server.auth.passwords import PasswordHasher
from server.request_body import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from server.users.models import Role
from sync_protocol.errors import ItemErrorCode
from sync_protocol.messages import (
    ChoiceString,
    PatternString,
    ProtocolList,
    ProtocolNested,
    ProtocolString,
    QueryInteger,
    RequestSchema,
    ResponseSchema,
    Rfc3339DateTime,
)

ROLE_WORDS = tuple(Role.codes())
# Twelve digits whose province part is not 00 (`server.regions.codes.is_valid_code`).
REGION_CODE_RE = re.compile(r"(?:0[1-9]|[1-9][0-9])[0-9]{10}")
# What `create_user` accepts, less names of dots alone (a path segment `.` or `..` is not a name).
USERNAME_RE = re.compile(r"[A-Za-z0-9_.]*[A-Za-z0-9_][A-Za-z0-9_.]*")
MAX_GRANTS = 100

E = TypeVar("E", bound=LabelledEnum)


def member_of(enum: type[E], code: str) -> E:
    """The member of `enum` whose code is `code` (a code its schema field already checked)."""
    return {member.value: member for member in enum}[code]


def region_code_field(**kwargs: object) -> PatternString:
    return PatternString(
        REGION_CODE_RE,
        ItemErrorCode.INVALID_VALUE,
        "Must be a 12-digit division code.",
        max_length=12,
        **kwargs,
    )


class UserListQuerySchema(RequestSchema):
    """`GET /api/v1/users`: `role`, `region` (users with a grant on it or below it), `active`
    (`true`/`false`), paged by `limit` and `offset`."""

    role = ChoiceString(ROLE_WORDS)
    region = region_code_field()
    active = ChoiceString(("true", "false"))
    limit = QueryInteger(minimum=1, maximum=MAX_PAGE_LIMIT, load_default=DEFAULT_PAGE_LIMIT)
    offset = QueryInteger(minimum=0, load_default=0)


class UserCreateSchema(RequestSchema):
    """`POST /api/v1/users`: the password must meet the policy (at least 8 characters)."""

    username = PatternString(
        USERNAME_RE,
        ItemErrorCode.INVALID_VALUE,
        "1-64 letters, digits, '_' or '.', not only dots.",
        required=True,
        max_length=64,
    )
    password = ProtocolString(required=True, min_length=PasswordHasher.MIN_LENGTH, max_length=1024)
    role = ChoiceString(ROLE_WORDS, required=True)
    display_name = ProtocolString(min_length=0, max_length=100, load_default="")
    regions = ProtocolList(region_code_field(), max_items=MAX_GRANTS, load_default=list)


class GrantRequestSchema(RequestSchema):
    """`POST /api/v1/users/{username}/grants`: the region to grant (it covers all below it)."""

    region = region_code_field(required=True)


class PasswordResetSchema(RequestSchema):
    """`POST /api/v1/users/{username}/password`: the new password (every token of the user ends)."""

    password = ProtocolString(required=True, min_length=PasswordHasher.MIN_LENGTH, max_length=1024)


class UserSchema(ResponseSchema):
    username = fields.String()
    display_name = fields.String()
    role = ChoiceString(ROLE_WORDS)
    is_active = fields.Boolean()
    created_at = Rfc3339DateTime()
    disabled_at = Rfc3339DateTime(allow_none=True)
    regions = fields.List(fields.String())


class UserPageSchema(ResponseSchema):
    users = fields.List(ProtocolNested(UserSchema))
    limit = fields.Integer()
    offset = fields.Integer()


class PasswordResetResultSchema(ResponseSchema):
    """`tokens_ended`: the user's tokens that stopped working (their tablets log in again)."""

    username = fields.String()
    tokens_ended = fields.Integer()
