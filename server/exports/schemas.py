"""Query parameters of the export endpoints. Unknown parameters and malformed filters are a 422
naming each bad one (RequestSchema is strict)."""

from __future__ import annotations

from marshmallow import fields

from forms.register import MonitoringStatus, MonitoringType
from server.exports.formats import FORMATS
from server.monitoring.report_schemas import REGION_CODE_RE
from server.monitoring.summary import FIRST_YEAR, LAST_YEAR
from sync_protocol.errors import ItemErrorCode
from sync_protocol.messages import (
    ChoiceString,
    PatternString,
    ProtocolString,
    QueryInteger,
    RequestSchema,
    ResponseSchema,
    Rfc3339DateTime,
)

FORM_ID_RE_TEXT = r"[a-z][a-z0-9_]{0,63}"
LABEL_WORDS = ("code", "zh", "en")
# conflicts: open, resolved; cases: open, approved, rejected; warnings: open, referred, handled,
# dismissed
STATUS_WORDS = ("open", "resolved", "approved", "rejected", "referred", "handled", "dismissed")
FLAG_WORDS = ("true", "false", "1", "0")
MAX_FEED_LIMIT = 5000


class FilterQuerySchema(RequestSchema):
    """The filters every export form shares. Each dataset accepts only some (see
    docs/exports.md); a filter a dataset lacks is a 422 too."""

    region = PatternString(
        REGION_CODE_RE,
        ItemErrorCode.INVALID_VALUE,
        "Must be a 12-digit administrative division code.",
        min_length=12,
        max_length=12,
    )
    monitoring_type = ChoiceString(tuple(MonitoringType.codes()))
    monitoring_status = ChoiceString(tuple(MonitoringStatus.codes()))
    status = ChoiceString(STATUS_WORDS)
    form_id = ProtocolString(max_length=64)
    form_version = QueryInteger(minimum=1, maximum=2**31 - 1)
    year = QueryInteger(minimum=FIRST_YEAR, maximum=LAST_YEAR)
    changed_since = Rfc3339DateTime()
    labels = ChoiceString(LABEL_WORDS, load_default="code")
    header = ChoiceString(LABEL_WORDS)
    reveal = ChoiceString(("sensitive",))


class ExportQuerySchema(FilterQuerySchema):
    """`GET /api/v1/exports/{dataset}`: the file. `format` csv (default), xlsx, jsonl or zip (the
    bundle of every dataset the filters suit, as CSV); `bom=true` starts a CSV with a UTF-8 BOM
    (for Excel); `labels` shows choices as codes or zh/en labels; `header` names the columns by
    code, zh or en (default: code, XLSX zh); `cursor` is the `X-Export-Cursor` of an earlier
    export of the same dataset and filters: only what changed since; `reveal=sensitive` shows
    identity numbers, phones, health and disability (audited)."""

    format = ChoiceString(FORMATS, load_default="csv")
    bom = ChoiceString(FLAG_WORDS)
    cursor = ProtocolString(max_length=512)


class FeedQuerySchema(FilterQuerySchema):
    """`GET /api/v1/exports/{dataset}/feed`: one page of rows as JSON; `after` is the key of the
    last row of the previous page (from the page's `next` link); `limit` rows per page."""

    after = ProtocolString(max_length=200)
    limit = QueryInteger(minimum=1, maximum=MAX_FEED_LIMIT, load_default=1000)


class FeedPageSchema(ResponseSchema):
    """A page of the BI feed: `value` the rows (keys: column codes), `next` the URL of the next
    page (absent on the last), `columns` the dataset's columns."""

    dataset = fields.String(required=True)
    columns = fields.List(fields.Dict(), required=True)
    value = fields.List(fields.Dict(), required=True)
    next = fields.String()


class DatasetListSchema(ResponseSchema):
    """`GET /api/v1/exports`: the datasets, their columns and filters."""

    datasets = fields.List(fields.Dict(), required=True)


class ODataQuerySchema(RequestSchema):
    """`GET /api/v1/exports/odata/{dataset}`: an OData v4 entity set. `$top` rows per page (at
    most 5000, default 1000), `$skip` rows left out first, `$select` column codes joined by
    commas, `$filter` the dataset's filters as `name eq 'value'` clauses joined by `and`
    (`changed_since ge 2026-01-01T00:00:00Z`), `$skiptoken` the position in
    `@odata.nextLink`."""

    top = QueryInteger(minimum=0, maximum=MAX_FEED_LIMIT, data_key="$top", load_default=1000)
    skip = QueryInteger(minimum=0, maximum=2**31 - 1, data_key="$skip", load_default=0)
    select = ProtocolString(max_length=2000, data_key="$select")
    filter = ProtocolString(max_length=1000, data_key="$filter")
    skiptoken = ProtocolString(max_length=200, data_key="$skiptoken")
    format = ChoiceString(("json", "application/json"), data_key="$format")


class ODataServiceSchema(ResponseSchema):
    """`GET /api/v1/exports/odata`: the OData service document: the entity sets (datasets)."""

    odata_context = fields.String(required=True, data_key="@odata.context")
    value = fields.List(fields.Dict(), required=True)


class ODataPageSchema(ResponseSchema):
    """A page of an OData entity set: `value` the entities (keys: column codes),
    `@odata.nextLink` the URL of the next page (absent on the last)."""

    odata_context = fields.String(required=True, data_key="@odata.context")
    value = fields.List(fields.Dict(), required=True)
    next_link = fields.String(data_key="@odata.nextLink")
