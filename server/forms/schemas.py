"""Shapes of the forms endpoints' arguments: the diff query and the retire request. Form
definitions themselves are checked by `forms.definition_schema`, which reports every problem."""

from __future__ import annotations

from sync_protocol.messages import MAX_INT32, QueryInteger, RequestSchema, StrictInteger


class DiffQuerySchema(RequestSchema):
    """`GET /api/v1/forms/{form_id}/diff?from=N&to=M`: two published versions."""

    class Meta(RequestSchema.Meta):
        # `from` is a Python keyword: the field is declared here under its wire name.
        include = {  # noqa: RUF012 (marshmallow option)
            "from": QueryInteger(required=True, minimum=1, maximum=MAX_INT32),
            "to": QueryInteger(required=True, minimum=1, maximum=MAX_INT32),
        }


class RetireRequestSchema(RequestSchema):
    """`POST /api/v1/forms/{form_id}/retire` body: `{"version": n}` retires one version; no body
    (or `{}`) retires the whole form."""

    version = StrictInteger(minimum=1, maximum=MAX_INT32)
