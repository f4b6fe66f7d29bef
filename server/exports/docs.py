"""docs/exports.md written from the dataset registry (`python -m server.exports.docs > docs/
exports.md`); a test holds the file to the registry, so the docs list every column."""

from __future__ import annotations

from server.exports.registry import all_datasets
from server.exports.service import CHANGE_COLUMN

INTRODUCTION = """# Exports

Supervisors and admins export the merged register, visits, review queues, cases and summaries of
the regions they are granted (`GET /api/v1/exports/{dataset}`), or page through them as JSON
(`GET /api/v1/exports/{dataset}/feed`) from Power BI, Excel or Tableau. Collectors may not export.
This page is generated from `server/exports/datasets/` (`python -m server.exports.docs`).

## Formats and options

{options}

The column order below is the order of CSV columns, XLSX columns and JSON keys, and it is stable:
columns are only ever added at the end of a dataset. Types: `text`; `integer`; `decimal` (plain
decimal text in CSV, a number in XLSX and JSON); `boolean` (`true`/`false` in CSV, a boolean in
XLSX and JSON); `date` (ISO 8601 in CSV and JSON, a date cell in XLSX); `datetime` (ISO 8601 with
offset, UTC, in CSV and JSON; a UTC date-time cell in XLSX, which has no time zones); `choice` (a
code, or its label with `labels`); `choices` (codes joined by `;` in CSV and XLSX, a list in
JSON); `json` (JSON text in CSV and XLSX, a value in JSON).

Sensitive columns (marked *sensitive*) are masked unless revealed: identity numbers as
`4526**********1234`, phones as `139****1234`, health and disability as `***`.

## Filters

`region` (a 12-digit code of any level, within the caller's grants: another region is a `403`),
`monitoring_type`, `monitoring_status`, `status`, `form_id`, `form_version`, `year`,
`changed_since` (RFC 3339 with offset). Each dataset takes the filters listed with it; any other
filter, an unknown parameter, a parameter given twice or a malformed value is a `422` naming it.
Exports are always limited to the caller's regions.

## Incremental exports

Every export of `households` or `members` answers with a header `X-Export-Cursor`. Exporting the
same dataset with the same filters and `cursor=<it>` returns exactly the rows whose entity
changed since (pushes, server-side edits, conflict resolutions: everything the change log
records), in their current state, with a first column `change`: `changed`, or `removed` for a
row that left the export (moved to a village outside the `region` filter or the caller's scope,
merged away, deleted), of which only the key is filled. A household moved from village A to B is
`changed` in B's next incremental export and `removed` from A's; its members too. The answer
carries the next cursor. A cursor is bound to its user, dataset and filters (`changed_since`
aside); another's is a `422`.

## BI feed

`GET /api/v1/exports/{dataset}/feed?limit=1000&<filters>` answers
`{"dataset", "columns", "value": [rows keyed by column code], "next": URL}` ordered by the
dataset's key; follow `next` until it is absent. Same filters, scope, masking and reveal rules
as the files.

### OData v4

The same feed as an OData v4 subset, for Excel's and Power BI's "OData feed" (the URL to give
them is `/api/v1/exports/odata`, with the bearer token):

- `GET /api/v1/exports/odata`: the service document, one entity set per dataset that has a key
  and needs no filter (`monitoring_summary` is not one).
- `GET /api/v1/exports/odata/$metadata`: the CSDL XML: for each dataset an entity type keyed by
  its key column, with every column typed (text, choices and JSON as `Edm.String` — a choice list
  joined by `;` and a JSON document as its text, as in CSV —, integers `Edm.Int64`, decimals
  `Edm.Decimal`, booleans `Edm.Boolean`, dates `Edm.Date`, times `Edm.DateTimeOffset`).
- `GET /api/v1/exports/odata/{dataset}`: `{"@odata.context", "value": [entities],
  "@odata.nextLink"}` ordered by the key; `$top` (rows per page, at most 5000, default 1000),
  `$skip`, `$select=code,code`, `$filter` on the dataset's filters as `name eq 'value'` clauses
  joined by `and` (`region`, `monitoring_type`, `monitoring_status`, `status`, `year`; and
  `changed_since ge 2026-01-01T00:00:00Z`); the next page's link carries `$skiptoken`. The form
  filters of `visits` are not offered (they change the columns `$metadata` declares). Always
  masked; any other option (`$orderby`, `$expand`, `$count`) is a `422`.

## Background jobs

Large exports can run as background jobs whose file is downloaded later:

- `POST /api/v1/exports/{dataset}/jobs?<the parameters of a direct export>` checks everything a
  direct export checks (dataset, filters, scope, the reveal permission, the cursor) and answers
  `202` with the job: `id`, `status` (`queued`, `running`, `succeeded`, `failed`, `expired`),
  `rows_done`, `bytes_done`, `created_at`, `started_at`, `finished_at`, `expires_at`, `error`,
  `cursor` (the next incremental cursor of a one-dataset export) and `file` (the download's
  URL once it succeeded). `format=zip` with path `all` bundles as a direct export does.
- `GET /api/v1/exports/jobs` lists the caller's jobs, newest first (admins: everyone's;
  `?status=&limit=&offset=`); `GET /api/v1/exports/jobs/{id}` is one job with its progress.
- `GET /api/v1/exports/jobs/{id}/file` downloads the file: the same bytes a direct export with
  the same parameters would have streamed at the time the job ran. `409` while the job is
  queued, running or failed, `410` once it expired.
- `DELETE /api/v1/exports/jobs/{id}` removes the job and its file (`204`); a running job is
  cancelled.

Only the job's creator and admins see, download or delete it (for anyone else it does not exist:
`404`). The job runs with the regions its creator had when creating it. A job with
`reveal=sensitive` is audited like a direct export when it is created (`export_reveal`, object the
dataset), and again at every download (`export_reveal`, object `export_job` and the job's id, with
`download: true`); running it is not audited a second time. Files are kept `EXPORT_JOB_TTL`
(3 days) after the job finished, then removed (the job becomes `expired`). How jobs are run and
where files are stored: docs/operations.md, "Export jobs".

## Command line

`fieldsync export DATASET [--region CODE] [--format csv|xlsx|jsonl] [--labels code|zh|en]
[--bom] [--reveal] [--cursor C] -o FILE` writes the same file as the API, acting as the system
(every region), with a progress line (rows, rows per second) on standard error; the next cursor
is printed at the end. `--background` (without `-o`) queues a background job instead, as the
system (admins see it), and prints its id.
"""


OPTIONS = (
    (
        "format",
        "`csv` (default), `xlsx`, `jsonl`, `zip`",
        "CSV is UTF-8 with CRLF line ends; XLSX has one sheet named after the dataset "
        "(continued on `<dataset> (2)`, … past Excel's 1,048,576 rows) plus a sheet `columns` "
        "(code, 中文, English, type, sensitive of every column); JSON Lines has "
        "one object per row; `zip` (path `all`, or a dataset name) is one CSV per dataset the "
        "filters suit. Every format streams as it is written (XLSX too: its sheet goes into the "
        "ZIP as the rows are read), and a client that goes away ends the export's query",
    ),
    (
        "bom",
        "`true`",
        "start CSV with a UTF-8 byte-order mark so that Excel reads Chinese text correctly",
    ),
    (
        "labels",
        "`code` (default), `zh`, `en`",
        "choice values (and, in CSV, true/false as 是/否 or yes/no) as codes or labels",
    ),
    (
        "header",
        "`code`, `zh`, `en`",
        "column names: codes (default for CSV and JSON Lines), Chinese (default for XLSX) or "
        "English headers",
    ),
    (
        "reveal",
        "`sensitive`",
        "identity numbers, phones, health and disability in clear: only roles in "
        "`REVEAL_ROLES`, and every such export is written to the audit log (`export_reveal`: "
        "who, which dataset, which filters, which fields)",
    ),
    (
        "cursor",
        "the `X-Export-Cursor` header of an earlier export",
        "incremental export (households, members): only what changed since, see below",
    ),
)


def _options_table() -> str:
    rows = ["| parameter | values | meaning |", "|---|---|---|"]
    rows += [f"| `{name}` | {values} | {meaning} |" for name, values, meaning in OPTIONS]
    return "\n".join(rows)


def render() -> str:
    lines = [INTRODUCTION.replace("{options}", _options_table()), "## Datasets", ""]
    for dataset in all_datasets().values():
        lines += [f"### `{dataset.name}` — {dataset.zh} / {dataset.en}", ""]
        if dataset.doc:
            lines += [dataset.doc, ""]
        filters = ", ".join(f"`{name}`" for name in sorted(dataset.filters))
        lines += [f"Filters: {filters}."]
        if dataset.required:
            lines += [f"Required: {', '.join(f'`{n}`' for n in sorted(dataset.required))}."]
        if dataset.change_entity:
            lines += ["Incremental: yes (`cursor`)."]
        lines += [f"Key: `{dataset.key}`.", ""]
        lines += [
            "| code | 中文 | English | type | sensitive | notes |",
            "|---|---|---|---|---|---|",
        ]
        for column in dataset.columns:
            lines.append(
                f"| `{column.name}` | {column.zh} | {column.en} | {column.kind} | "
                f"{'sensitive' if column.sensitive else ''} | {column.doc} |"
            )
        lines.append("")
    lines += [
        "### Incremental column",
        "",
        "| code | 中文 | English | type | sensitive | notes |",
        "|---|---|---|---|---|---|",
        f"| `{CHANGE_COLUMN.name}` | {CHANGE_COLUMN.zh} | {CHANGE_COLUMN.en} | "
        f"{CHANGE_COLUMN.kind} |  | {CHANGE_COLUMN.doc} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
