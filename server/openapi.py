"""The OpenAPI 3 description of the HTTP API, built with apispec from one table of operations and
the protocol's own marshmallow schemas. Served at `GET /api/v1/openapi.json`.

It must say exactly what the server does, in both directions: every status an operation can
answer is listed (with the error shape), and no parameter or body is allowed that the server
refuses. Tests hold the table to the app's URL map, and schemathesis holds the description to the
running server (`tests/test_api_schemathesis.py`). Never describe an endpoint from memory here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint
from marshmallow import Schema, fields

from forms.definition_schema import FORM_ID
from forms.xlsform_writer import XLSX_MEDIA_TYPE
from server import __version__
from server.auth.schemas import DeviceAssignRequestSchema
from server.conflicts.schemas import (
    ConflictListQuerySchema,
    ConflictPageSchema,
    ConflictQuerySchema,
    ResolvedConflictSchema,
    ResolveRequestSchema,
)
from server.conflicts.schemas import ConflictSchema as ReviewConflictSchema
from server.departments.schemas import (
    ImportListQuerySchema,
    ImportPageSchema,
    ImportSchema,
    SourceCreateSchema,
    SourcePageSchema,
    SourceSchema,
    SourceUpdateSchema,
)
from server.departments.schemas import PageQuerySchema as SourcePageQuerySchema
from server.devices.schemas import (
    DeviceListQuerySchema,
    DevicePageSchema,
    EnrolmentCreateSchema,
    EnrolmentListQuerySchema,
    EnrolmentPageSchema,
    EnrolmentSchema,
    EnrolRequestSchema,
    NewEnrolmentSchema,
)
from server.exports.job_schemas import (
    ExportJobListQuerySchema,
    ExportJobListSchema,
    ExportJobSchema,
)
from server.exports.schemas import (
    DatasetListSchema,
    ExportQuerySchema,
    FeedPageSchema,
    FeedQuerySchema,
    ODataPageSchema,
    ODataQuerySchema,
    ODataServiceSchema,
)
from server.forms.schemas import DiffQuerySchema, RetireRequestSchema
from server.households.schemas import HouseholdSearchPageSchema, HouseholdSearchQuerySchema
from server.monitoring.help_schemas import (
    FollowupPageSchema,
    FollowupQuerySchema,
    HelperCreateSchema,
    HelperEndSchema,
    HelperSchema,
    HelperUpdateSchema,
    HelpQuerySchema,
    HouseholdHelpSchema,
    MeasureCreateSchema,
    MeasureSchema,
    MeasureUpdateSchema,
)
from server.monitoring.report_schemas import (
    SummaryQuerySchema,
    TimelinePageSchema,
    TimelineQuerySchema,
)
from server.monitoring.schemas import (
    CaseListQuerySchema,
    CasePageSchema,
    CaseSchema,
    DepartmentReferralSchema,
    ExitCaseRequestSchema,
    ReferralResultSchema,
    ScreeningReferralSchema,
    SettingsQuerySchema,
    SettingsSchema,
    SettingsUpdateSchema,
    StepRequestSchema,
)
from server.monitoring.snapshot_schemas import (
    DailyQuerySchema,
    OverdueTrendSchema,
    SnapshotListSchema,
)
from server.regions.schemas import RegionListQuerySchema, RegionListSchema, RegionPathSchema
from server.request_body import PageQuerySchema
from server.scheduler.schemas import JobListingSchema, JobListQuerySchema, JobRunSchema
from server.submissions.schemas import (
    DismissRequestSchema,
    QuarantineQuerySchema,
    ResubmitRequestSchema,
    ReviewedSubmissionSchema,
)
from server.users.schemas import (
    REGION_CODE_RE,
    USERNAME_RE,
    GrantRequestSchema,
    PasswordResetResultSchema,
    PasswordResetSchema,
    UserCreateSchema,
    UserListQuerySchema,
    UserPageSchema,
    UserSchema,
)
from server.warnings.config import BY_NAME as WARNING_SETTINGS
from server.warnings.schemas import (
    ConfigQuerySchema,
    ConfigSchema,
    ConfigUpdateSchema,
    DismissWarningSchema,
    HandleWarningSchema,
    ReferWarningSchema,
    WarningListQuerySchema,
    WarningPageSchema,
    WarningQuerySchema,
    WarningSchema,
)
from sync_protocol.clock import MAX_NODE_LENGTH
from sync_protocol.errors import ErrorCode
from sync_protocol.messages import (
    MAX_INT32,
    ChoiceString,
    ClockMap,
    EntityRevs,
    ErrorDetails,
    ErrorResponseSchema,
    HlcField,
    JsonObject,
    JsonValue,
    LoginRequestSchema,
    LoginResponseSchema,
    PatternString,
    ProtocolList,
    ProtocolString,
    PullRequestSchema,
    PullResponseSchema,
    PushRequestSchema,
    PushResponseSchema,
    Rfc3339DateTime,
    StrictBoolean,
    StrictInteger,
    SubmissionList,
    SubmissionSchema,
    UuidString,
)

ANY = ("admin", "supervisor", "collector")


class HouseholdQuerySchema(Schema):
    """`GET /api/v1/households/{id}`: `reveal` shows sensitive fields (audited); other values and
    other arguments are ignored."""

    reveal = ChoiceString(("sensitive", "true", "1"))


STAFF = ("admin", "supervisor")
ADMIN = ("admin",)

# Request body kinds besides a registered schema name.
ANY_JSON_OBJECT = "json"
MULTIPART = "multipart"
XLSFORM_MULTIPART = "multipart-xlsform"  # the workbook, and the CSV files its selects name
BINARY = "binary"


@dataclass(frozen=True)
class Operation:
    """One operation. Statuses that follow from its shape are added by `_operation`: 401/403
    with `roles`, 404 with path parameters, 400/413/415 with a JSON or multipart body, 413/415
    with a binary one, 304 with `etag`, and 500 and 503 always (503: the database could not be
    reached, or ended the transaction to break a deadlock; nothing applied). `errors` lists the
    rest."""

    method: str
    path: str  # OpenAPI form: /api/v1/forms/{form_id}
    summary: str
    tag: str
    roles: tuple[str, ...] | None = ANY  # None: no login needed
    request: str | None = None  # a registered schema name, or ANY_JSON_OBJECT/MULTIPART/BINARY
    request_required: bool = True
    response: str | None = None  # a registered schema, or None for a generic JSON object
    status: int = 200
    also: tuple[int, ...] = ()  # other success statuses with the same body (e.g. 200 and 201)
    errors: tuple[int, ...] = ()
    query: type[Schema] | None = None  # query parameters, from the schema the route loads them with
    etag: bool = False  # sends ETag, answers If-None-Match with 304
    download: bool = False  # the body is the stored bytes in their own content type
    download_type: str = "*/*"  # the media type of a download, when it is always the same
    attachment: bool = False  # a download sent with `Content-Disposition: attachment; filename=`


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get",
        "/api/v1/health",
        "Version, database kind and migration state",
        "service",
        roles=None,
        response="Health",
        errors=(503,),
    ),
    Operation("get", "/api/v1/openapi.json", "This description", "service", roles=None),
    Operation(
        "post",
        "/api/v1/auth/login",
        "Log in (with device_id: register and bind a device)",
        "auth",
        roles=None,
        request="LoginRequest",
        response="LoginResponse",
        errors=(401, 403, 422, 429),
    ),
    Operation("get", "/api/v1/auth/me", "The caller", "auth", response="Me"),
    Operation("post", "/api/v1/auth/logout", "Revoke the token used", "auth", status=204),
    Operation(
        "post",
        "/api/v1/devices/{device_id}/revoke",
        "Revoke a device and its tokens (supervisors: devices of collectors in their regions)",
        "auth",
        roles=STAFF,
        response="RevokedDevice",
    ),
    Operation(
        "post",
        "/api/v1/devices/{device_id}/assign",
        "Assign a device to a user; other users' tokens for it stop working",
        "auth",
        roles=ADMIN,
        request="DeviceAssignRequest",
        errors=(422,),
    ),
    Operation("get", "/api/v1/forms", "Published forms in use", "forms", response="FormList"),
    Operation(
        "post",
        "/api/v1/forms",
        "Create a form with its first draft",
        "forms",
        roles=ADMIN,
        request="NewForm",
        response="DraftReport",
        status=201,
        errors=(409, 422),
    ),
    Operation(
        "get",
        "/api/v1/forms/{form_id}",
        "Current published definition (ETag, 304)",
        "forms",
        etag=True,
    ),
    Operation(
        "get",
        "/api/v1/forms/{form_id}/versions",
        "All published versions",
        "forms",
        roles=STAFF,
        response="FormVersions",
    ),
    Operation(
        "get",
        "/api/v1/forms/{form_id}/versions/{version}",
        "One published version (ETag, 304)",
        "forms",
        etag=True,
    ),
    Operation(
        "get",
        "/api/v1/forms/{form_id}/diff",
        "Changes between two versions",
        "forms",
        roles=STAFF,
        errors=(422,),
        query=DiffQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/forms/{form_id}/versions/{version}/xlsform",
        "One published version as an XLSForm workbook (imports back to the same definition)",
        "forms",
        roles=STAFF,
        download=True,
        download_type=XLSX_MEDIA_TYPE,
        attachment=True,
        errors=(422,),
    ),
    Operation("get", "/api/v1/forms/{form_id}/draft", "The draft", "forms", roles=ADMIN),
    Operation(
        "get",
        "/api/v1/forms/{form_id}/draft/xlsform",
        "The draft as an XLSForm workbook (422 when the draft does not load)",
        "forms",
        roles=ADMIN,
        download=True,
        download_type=XLSX_MEDIA_TYPE,
        attachment=True,
        errors=(422,),
    ),
    Operation(
        "put",
        "/api/v1/forms/{form_id}/draft",
        "Replace the draft",
        "forms",
        roles=ADMIN,
        request="FormDraft",
        response="DraftReport",
        errors=(422,),
    ),
    Operation(
        "post",
        "/api/v1/forms/{form_id}/draft/validate",
        "Problems of the draft",
        "forms",
        roles=ADMIN,
        response="DraftReport",
    ),
    Operation(
        "post",
        "/api/v1/forms/{form_id}/publish",
        "Publish the draft as the next version",
        "forms",
        roles=ADMIN,
        errors=(409, 422),
    ),
    Operation(
        "post",
        "/api/v1/forms/{form_id}/retire",
        "Retire the form or one version (no body: every version)",
        "forms",
        roles=ADMIN,
        request="RetireRequest",
        request_required=False,
        errors=(409, 422),
    ),
    Operation(
        "post",
        "/api/v1/forms/import/xlsform",
        "Import an XLSForm workbook as a draft (201 new form, 200 next draft)",
        "forms",
        roles=ADMIN,
        request=XLSFORM_MULTIPART,
        response="DraftReport",
        status=201,
        also=(200,),
        errors=(409, 422),
    ),
    Operation(
        "get",
        "/api/v1/households/{household_id}",
        "One household and its members",
        "register",
        query=HouseholdQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/households/{household_id}/timeline",
        "The household's visits, changes, conflicts, referrals and case steps, newest first",
        "monitoring",
        response="TimelinePage",
        errors=(422,),
        query=TimelineQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/monitoring/summary",
        "Monitoring figures of a region and each of its child regions, for a year",
        "monitoring",
        response="MonitoringSummary",
        errors=(404, 422),
        query=SummaryQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/households/flagged",
        "Households flagged by a merge",
        "register",
        roles=STAFF,
        errors=(422,),
        query=PageQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/submissions/quarantine",
        "Rejected submissions",
        "register",
        roles=STAFF,
        errors=(422,),
        query=QuarantineQuerySchema,
    ),
    Operation(
        "post",
        "/api/v1/submissions/{instance_id}/dismiss",
        "Dismiss a quarantined submission with a reason (once)",
        "register",
        roles=STAFF,
        request="DismissRequest",
        response="ReviewedSubmission",
        errors=(409, 422),
    ),
    Operation(
        "post",
        "/api/v1/submissions/{instance_id}/resubmit",
        "Correct a quarantined submission's answers and push them as a new submission (once)",
        "register",
        roles=STAFF,
        request="ResubmitRequest",
        response="ReviewedSubmission",
        errors=(409, 422),
    ),
    Operation(
        "post",
        "/api/v1/sync/push",
        "Push a batch of submissions (each item judged on its own)",
        "sync",
        request="PushRequest",
        response="PushResponse",
        errors=(422,),
    ),
    Operation(
        "get",
        "/api/v1/sync/pull",
        "Pull the register of the caller's regions",
        "sync",
        response="PullResponse",
        errors=(400, 410, 422),
        query=PullRequestSchema,
    ),
    Operation(
        "put",
        "/api/v1/attachments/{digest}",
        "Upload an attachment by its SHA-256 (201 stored, 200 already there)",
        "attachments",
        request=BINARY,
        response="StoredAttachment",
        status=201,
        also=(200,),
        errors=(422,),
    ),
    Operation(
        "get",
        "/api/v1/attachments/{digest}",
        "Download an attachment, in the content type it was uploaded with",
        "attachments",
        roles=STAFF,
        etag=True,
        download=True,
    ),
    Operation(
        "get",
        "/api/v1/conflicts",
        "Conflicts in the caller's regions",
        "conflicts",
        roles=STAFF,
        response="ConflictPage",
        errors=(422,),
        query=ConflictListQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/conflicts/{conflict_id}",
        "One conflict",
        "conflicts",
        roles=STAFF,
        response="ReviewConflict",
        errors=(422,),
        query=ConflictQuerySchema,
    ),
    Operation(
        "post",
        "/api/v1/conflicts/{conflict_id}/resolve",
        "Resolve by choosing a value",
        "conflicts",
        roles=STAFF,
        request="ResolveRequest",
        response="ResolvedConflict",
        errors=(409, 422),
    ),
    Operation(
        "post",
        "/api/v1/monitoring/referrals",
        "Refer a household for monitoring (a cadre's screening)",
        "monitoring",
        request="ScreeningReferral",
        response="ReferralResult",
        status=201,
        errors=(404, 422),
    ),
    Operation(
        "post",
        "/api/v1/monitoring/referrals/department",
        "Refer a household on a department's warning",
        "monitoring",
        roles=ADMIN,
        request="DepartmentReferral",
        response="ReferralResult",
        status=201,
        errors=(404, 422),
    ),
    Operation(
        "post",
        "/api/v1/monitoring/exit-cases",
        "Open the exit chain (risk eliminated) of a monitored household",
        "monitoring",
        request="ExitCaseRequest",
        response="Case",
        status=201,
        errors=(404, 409, 422),
    ),
    Operation(
        "get",
        "/api/v1/monitoring/cases",
        "Cases in the caller's regions",
        "monitoring",
        response="CasePage",
        errors=(422,),
        query=CaseListQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/monitoring/cases/{case_id}",
        "One case with its steps and referrals",
        "monitoring",
        response="Case",
    ),
    Operation(
        "post",
        "/api/v1/monitoring/cases/{case_id}/steps",
        "Take the step the case waits at",
        "monitoring",
        request="StepRequest",
        response="Case",
        status=201,
        errors=(409, 422),
    ),
    Operation(
        "get",
        "/api/v1/households/{household_id}/help",
        "A household's helpers and assistance measures (reveal=sensitive shows phones, audited)",
        "monitoring",
        response="HouseholdHelp",
        errors=(422,),
        query=HelpQuerySchema,
    ),
    Operation(
        "post",
        "/api/v1/households/{household_id}/helpers",
        "Make a user or a named person responsible for helping a monitored household",
        "monitoring",
        roles=STAFF,
        request="HelperCreate",
        response="Helper",
        status=201,
        errors=(409, 422),
    ),
    Operation(
        "patch",
        "/api/v1/monitoring/helpers/{helper_id}",
        "Change a helper's name, phone or note",
        "monitoring",
        roles=STAFF,
        request="HelperUpdate",
        response="Helper",
        errors=(422,),
    ),
    Operation(
        "post",
        "/api/v1/monitoring/helpers/{helper_id}/end",
        "A helper stops being responsible (kept on record)",
        "monitoring",
        roles=STAFF,
        request="HelperEnd",
        response="Helper",
        errors=(409, 422),
    ),
    Operation(
        "post",
        "/api/v1/households/{household_id}/measures",
        "Record an assistance measure for a monitored household",
        "monitoring",
        roles=STAFF,
        request="MeasureCreate",
        response="Measure",
        status=201,
        errors=(409, 422),
    ),
    Operation(
        "get",
        "/api/v1/monitoring/settings",
        "Monitoring settings as they apply in a region",
        "monitoring",
        roles=STAFF,
        response="MonitoringSettings",
        errors=(422,),
        query=SettingsQuerySchema,
    ),
    Operation(
        "put",
        "/api/v1/monitoring/settings",
        "Set monitoring settings for a region (audited)",
        "monitoring",
        roles=STAFF,
        request="SettingsUpdate",
        response="MonitoringSettings",
        errors=(422,),
    ),
    Operation(
        "patch",
        "/api/v1/monitoring/measures/{measure_id}",
        "Change an assistance measure (status, outcome, dates, amount)",
        "monitoring",
        roles=STAFF,
        request="MeasureUpdate",
        response="Measure",
        errors=(422,),
    ),
    Operation(
        "get",
        "/api/v1/monitoring/followups",
        "Monitored households whose follow-up visit is overdue or due, by region",
        "monitoring",
        roles=STAFF,
        response="FollowupPage",
        errors=(404, 422),
        query=FollowupQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/monitoring/summary/snapshots",
        "Stored daily monitoring summaries of a region",
        "monitoring",
        roles=STAFF,
        response="SnapshotList",
        errors=(404, 422),
        query=DailyQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/monitoring/followups/overdue-trend",
        "Overdue follow-up visits in a region per stored day",
        "monitoring",
        roles=STAFF,
        response="OverdueTrend",
        errors=(404, 422),
        query=DailyQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/jobs",
        "Scheduled jobs, their next runs and a page of runs",
        "jobs",
        roles=ADMIN,
        response="JobListing",
        errors=(404, 422),
        query=JobListQuerySchema,
    ),
    Operation(
        "post",
        "/api/v1/jobs/{name}/run",
        "Run a job now (a manual run; its failure is in the answer)",
        "jobs",
        roles=ADMIN,
        response="JobRun",
        errors=(409,),
    ),
    Operation(
        "get",
        "/api/v1/departments/sources",
        "Configured department sources",
        "departments",
        roles=ADMIN,
        response="DepartmentSourcePage",
        errors=(422,),
        query=SourcePageQuerySchema,
    ),
    Operation(
        "post",
        "/api/v1/departments/sources",
        "Configure a department source: department, column mapping, HTTP endpoint (audited)",
        "departments",
        roles=ADMIN,
        request="DepartmentSourceCreate",
        response="DepartmentSource",
        status=201,
        errors=(409, 422),
    ),
    Operation(
        "patch",
        "/api/v1/departments/sources/{source_id}",
        "Change a department source (audited)",
        "departments",
        roles=ADMIN,
        request="DepartmentSourceUpdate",
        response="DepartmentSource",
        errors=(422,),
    ),
    Operation(
        "post",
        "/api/v1/departments/sources/{source_id}/imports",
        "Import a CSV or XLSX file for a source (201 applied, 200 the same file again: unchanged)",
        "departments",
        roles=ADMIN,
        request=MULTIPART,
        response="DepartmentImport",
        status=201,
        also=(200,),
        errors=(422,),
    ),
    Operation(
        "get",
        "/api/v1/departments/imports",
        "Department import history, newest first",
        "departments",
        roles=ADMIN,
        response="DepartmentImportPage",
        errors=(422,),
        query=ImportListQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/departments/imports/{import_id}",
        "One department import with its report (rows masked)",
        "departments",
        roles=ADMIN,
        response="DepartmentImport",
    ),
    Operation(
        "get",
        "/api/v1/exports",
        "The export datasets, their columns and filters",
        "exports",
        roles=STAFF,
        response="DatasetList",
    ),
    Operation(
        "get",
        "/api/v1/exports/{dataset}",
        "Export a dataset as CSV, XLSX, JSON Lines or a ZIP bundle (`all` with format=zip), "
        "streamed; incremental with `cursor` (the X-Export-Cursor of an earlier export)",
        "exports",
        roles=STAFF,
        download=True,
        errors=(422,),
        query=ExportQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/exports/{dataset}/feed",
        "One page of a dataset as JSON for BI tools, with the link to the next",
        "exports",
        roles=STAFF,
        response="FeedPage",
        errors=(422,),
        query=FeedQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/exports/odata",
        "OData v4 service document: the datasets as entity sets",
        "exports",
        roles=STAFF,
        response="ODataService",
    ),
    Operation(
        "get",
        "/api/v1/exports/odata/$metadata",
        "OData v4 metadata (CSDL XML): each dataset's key and column types",
        "exports",
        roles=STAFF,
        download=True,
        download_type="application/xml",
    ),
    Operation(
        "get",
        "/api/v1/exports/odata/{dataset}",
        "A dataset as an OData v4 entity set ($top, $skip, $select, $filter; "
        "@odata.nextLink to the next page)",
        "exports",
        roles=STAFF,
        response="ODataPage",
        errors=(422,),
        query=ODataQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/warnings",
        "Risk warnings in the caller's regions, by region, rule, status, source and holds",
        "warnings",
        roles=STAFF,
        response="WarningPage",
        errors=(422,),
        query=WarningListQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/warnings/{warning_id}",
        "One warning with its evidence and history",
        "warnings",
        roles=STAFF,
        response="Warning",
        errors=(422,),
        query=WarningQuerySchema,
    ),
    Operation(
        "post",
        "/api/v1/warnings/{warning_id}/refer",
        "Refer the warning's household to the monitoring workflow",
        "warnings",
        roles=STAFF,
        request="ReferWarning",
        response="Warning",
        errors=(409, 422),
    ),
    Operation(
        "post",
        "/api/v1/warnings/{warning_id}/handle",
        "Mark a warning handled",
        "warnings",
        roles=STAFF,
        request="HandleWarning",
        response="Warning",
        errors=(409, 422),
    ),
    Operation(
        "post",
        "/api/v1/warnings/{warning_id}/dismiss",
        "Dismiss a warning, with the reason",
        "warnings",
        roles=STAFF,
        request="DismissWarning",
        response="Warning",
        errors=(409, 422),
    ),
    Operation(
        "get",
        "/api/v1/warnings/config",
        "The risk rules' configuration of a year and province",
        "warnings",
        roles=STAFF,
        response="WarningConfig",
        errors=(422,),
        query=ConfigQuerySchema,
    ),
    Operation(
        "put",
        "/api/v1/warnings/config",
        "Change the risk rules' configuration of a year and province (audited; re-evaluates)",
        "warnings",
        roles=ADMIN,
        request="WarningConfigUpdate",
        response="WarningConfig",
        errors=(422,),
    ),
    Operation(
        "post",
        "/api/v1/exports/{dataset}/jobs",
        "Start a background export (the direct export's parameters); 202 with the job, whose "
        "file is downloadable when it succeeded",
        "exports",
        roles=STAFF,
        response="ExportJob",
        status=202,
        errors=(422,),
        query=ExportQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/exports/jobs",
        "The caller's background exports (admins: everyone's), newest first",
        "exports",
        roles=STAFF,
        response="ExportJobList",
        errors=(422,),
        query=ExportJobListQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/exports/jobs/{job_id}",
        "One background export with its progress",
        "exports",
        roles=STAFF,
        response="ExportJob",
    ),
    Operation(
        "get",
        "/api/v1/exports/jobs/{job_id}/file",
        "Download a finished background export (409 while queued, running or failed; 410 once "
        "expired)",
        "exports",
        roles=STAFF,
        download=True,
        attachment=True,
        errors=(409, 410),
    ),
    Operation(
        "delete",
        "/api/v1/exports/jobs/{job_id}",
        "Cancel a background export and remove it and its file",
        "exports",
        roles=STAFF,
        status=204,
    ),
    Operation(
        "get",
        "/api/v1/households",
        "Search households in the caller's regions (masked; identity-number lookups audited), "
        "paged by cursor",
        "households",
        response="HouseholdSearchPage",
        errors=(404, 422),
        query=HouseholdSearchQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/regions",
        "The caller's root regions, or the regions directly below `parent`",
        "regions",
        response="RegionList",
        errors=(404, 422),
        query=RegionListQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/regions/{region_code}",
        "One region with the names of the regions above it",
        "regions",
        response="RegionPath",
    ),
    Operation(
        "get",
        "/api/v1/users",
        "Users, by role, region and whether active (supervisors: the collectors they manage)",
        "users",
        roles=STAFF,
        response="UserPage",
        errors=(422,),
        query=UserListQuerySchema,
    ),
    Operation(
        "post",
        "/api/v1/users",
        "Create a user with a role, a password and region grants (audited)",
        "users",
        roles=ADMIN,
        request="UserCreate",
        response="User",
        status=201,
        errors=(409, 422),
    ),
    Operation("get", "/api/v1/users/{username}", "One user", "users", roles=STAFF, response="User"),
    Operation(
        "post",
        "/api/v1/users/{username}/grants",
        "Grant a region (and all below it) to a user (audited)",
        "users",
        roles=ADMIN,
        request="GrantRequest",
        response="User",
        errors=(422,),
    ),
    Operation(
        "delete",
        "/api/v1/users/{username}/grants/{region_code}",
        "Withdraw a region grant (audited)",
        "users",
        roles=ADMIN,
        response="User",
    ),
    Operation(
        "post",
        "/api/v1/users/{username}/password",
        "Reset a user's password; every token of theirs ends (audited)",
        "users",
        roles=ADMIN,
        request="PasswordReset",
        response="PasswordResetResult",
        errors=(422,),
    ),
    Operation(
        "post",
        "/api/v1/users/{username}/disable",
        "Disable a user and end their tokens (audited; not oneself: 409)",
        "users",
        roles=ADMIN,
        response="User",
        errors=(409,),
    ),
    Operation(
        "post",
        "/api/v1/users/{username}/enable",
        "Let a disabled user log in again (audited)",
        "users",
        roles=ADMIN,
        response="User",
    ),
    Operation(
        "get",
        "/api/v1/devices",
        "Tablets with owner, last push, missing device_seq numbers and open conflicts "
        "(supervisors: those of collectors in their regions)",
        "devices",
        roles=STAFF,
        response="DevicePage",
        errors=(422,),
        query=DeviceListQuerySchema,
    ),
    Operation(
        "post",
        "/api/v1/devices/enrolments",
        "Make a one-time tablet enrolment code for a user (shown once, with its QR code's text)",
        "devices",
        roles=STAFF,
        request="EnrolmentCreate",
        response="NewEnrolment",
        status=201,
        errors=(404, 409, 422),
    ),
    Operation(
        "get",
        "/api/v1/devices/enrolments",
        "Enrolment codes of the users the caller manages, newest first",
        "devices",
        roles=STAFF,
        response="EnrolmentPage",
        errors=(422,),
        query=EnrolmentListQuerySchema,
    ),
    Operation(
        "get",
        "/api/v1/devices/enrolments/{enrolment_id}/qr.svg",
        "The QR code of an unused enrolment, as SVG (410 once used, revoked or expired; audited)",
        "devices",
        roles=STAFF,
        download=True,
        download_type="image/svg+xml",
        errors=(410,),
    ),
    Operation(
        "post",
        "/api/v1/devices/enrolments/{enrolment_id}/revoke",
        "Revoke an unused enrolment code (409 once used)",
        "devices",
        roles=STAFF,
        response="Enrolment",
        errors=(409,),
    ),
    Operation(
        "post",
        "/api/v1/auth/enrol",
        "Redeem an enrolment code from a tablet: a login bound to the device (once per code)",
        "auth",
        roles=None,
        request="EnrolRequest",
        response="LoginResponse",
        errors=(401, 403, 409, 410, 422),
    ),
)

_SCHEMAS: dict[str, type[Schema]] = {
    "LoginRequest": LoginRequestSchema,
    "LoginResponse": LoginResponseSchema,
    "DeviceAssignRequest": DeviceAssignRequestSchema,
    "Error": ErrorResponseSchema,
    "Submission": SubmissionSchema,
    "PushRequest": PushRequestSchema,
    "PushResponse": PushResponseSchema,
    "PullResponse": PullResponseSchema,
    "RetireRequest": RetireRequestSchema,
    "ResolveRequest": ResolveRequestSchema,
    "DismissRequest": DismissRequestSchema,
    "ResubmitRequest": ResubmitRequestSchema,
    "ReviewedSubmission": ReviewedSubmissionSchema,
    "ReviewConflict": ReviewConflictSchema,
    "ConflictPage": ConflictPageSchema,
    "ResolvedConflict": ResolvedConflictSchema,
    "ScreeningReferral": ScreeningReferralSchema,
    "DepartmentReferral": DepartmentReferralSchema,
    "ReferralResult": ReferralResultSchema,
    "ExitCaseRequest": ExitCaseRequestSchema,
    "StepRequest": StepRequestSchema,
    "Case": CaseSchema,
    "CasePage": CasePageSchema,
    "SettingsUpdate": SettingsUpdateSchema,
    "MonitoringSettings": SettingsSchema,
    "Helper": HelperSchema,
    "Measure": MeasureSchema,
    "HouseholdHelp": HouseholdHelpSchema,
    "HelperCreate": HelperCreateSchema,
    "HelperUpdate": HelperUpdateSchema,
    "HelperEnd": HelperEndSchema,
    "MeasureCreate": MeasureCreateSchema,
    "MeasureUpdate": MeasureUpdateSchema,
    "FollowupPage": FollowupPageSchema,
    "TimelinePage": TimelinePageSchema,
    "SnapshotList": SnapshotListSchema,
    "OverdueTrend": OverdueTrendSchema,
    "JobRun": JobRunSchema,  # before JobListing, which nests it
    "JobListing": JobListingSchema,
    "DepartmentSourceCreate": SourceCreateSchema,
    "DepartmentSourceUpdate": SourceUpdateSchema,
    "DepartmentSource": SourceSchema,
    "DepartmentSourcePage": SourcePageSchema,
    "DepartmentImport": ImportSchema,
    "DepartmentImportPage": ImportPageSchema,
    "DatasetList": DatasetListSchema,
    "FeedPage": FeedPageSchema,
    "ODataService": ODataServiceSchema,
    "ODataPage": ODataPageSchema,
    "WarningPage": WarningPageSchema,
    "Warning": WarningSchema,
    "ReferWarning": ReferWarningSchema,
    "HandleWarning": HandleWarningSchema,
    "DismissWarning": DismissWarningSchema,
    "WarningConfig": ConfigSchema,
    "WarningConfigUpdate": ConfigUpdateSchema,
    "ExportJob": ExportJobSchema,
    "ExportJobList": ExportJobListSchema,
    "HouseholdSearchPage": HouseholdSearchPageSchema,
    "RegionList": RegionListSchema,
    "RegionPath": RegionPathSchema,
    "User": UserSchema,
    "UserPage": UserPageSchema,
    "UserCreate": UserCreateSchema,
    "GrantRequest": GrantRequestSchema,
    "PasswordReset": PasswordResetSchema,
    "PasswordResetResult": PasswordResetResultSchema,
    "DevicePage": DevicePageSchema,
    "Enrolment": EnrolmentSchema,
    "NewEnrolment": NewEnrolmentSchema,
    "EnrolmentPage": EnrolmentPageSchema,
    "EnrolmentCreate": EnrolmentCreateSchema,
    "EnrolRequest": EnrolRequestSchema,
}

_HEX = "[0-9a-fA-F]"
_UUID = {
    "type": "string",
    "format": "uuid",
    "pattern": f"^{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}$",
}
_DIGEST = {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}
_LABEL = {
    "type": "object",
    "required": ["zh", "en"],
    "properties": {"zh": {"type": "string"}, "en": {"type": "string"}},
}
_COUNT = {"type": "integer", "minimum": 0}

# Plain JSON Schema for the answers that have no marshmallow schema of their own.
_PLAIN_SCHEMAS: dict[str, dict[str, Any]] = {
    "Health": {
        "type": "object",
        "required": ["status", "version", "database", "migrations"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "migrations_pending"]},
            "version": {"type": "string"},
            "database": {"type": "string"},
            "migrations": {"type": "object"},
        },
    },
    "Me": {
        "type": "object",
        "required": ["user"],
        "properties": {"user": {"$ref": "#/components/schemas/LoginUser"}},
    },
    "RevokedDevice": {
        "type": "object",
        "required": ["device_id", "revoked_at"],
        "properties": {
            "device_id": _UUID,
            "revoked_at": {"type": "string", "format": "date-time", "nullable": True},
        },
    },
    "FormSummary": {
        "type": "object",
        "required": ["form_id", "version", "hash", "published_at"],
        "properties": {
            "form_id": {"type": "string"},
            "version": {"type": "integer", "minimum": 1},
            "title": {"nullable": True},
            "hash": {"type": "string"},
            "published_at": {"type": "string", "format": "date-time"},
            "retired_at": {"type": "string", "format": "date-time", "nullable": True},
        },
    },
    "FormList": {
        "type": "object",
        "required": ["forms"],
        "properties": {
            "forms": {"type": "array", "items": {"$ref": "#/components/schemas/FormSummary"}}
        },
    },
    "FormVersions": {
        "type": "object",
        "required": ["form_id", "versions"],
        "properties": {
            "form_id": {"type": "string"},
            "versions": {"type": "array", "items": {"$ref": "#/components/schemas/FormSummary"}},
        },
    },
    "NewForm": {
        "description": "A form definition (see docs/forms.md); saved as the first draft even when "
        "it has problems, which the answer lists.",
        "type": "object",
        "required": ["form_id"],
        "properties": {"form_id": {"type": "string", "pattern": FORM_ID}},
    },
    "FormDraft": {
        "description": "A form definition (see docs/forms.md); saved as the draft even when it "
        "has problems, which the answer lists. `form_id`, if given, is the URL's.",
        "type": "object",
        "properties": {"form_id": {"type": "string", "pattern": FORM_ID}},
    },
    "DraftReport": {
        "type": "object",
        "required": ["form_id", "status", "valid", "issues"],
        "properties": {
            "form_id": {"type": "string"},
            "status": {"type": "string"},
            "valid": {"type": "boolean"},
            "issues": {"type": "array", "items": {"type": "object"}},
        },
    },
    "SummaryRegion": {
        "description": "One region's numbers: per section (see `layout`), one row per "
        "combination of the section's dimension codes with its measures as columns, and the "
        "total of each measure.",
        "type": "object",
        "required": ["code", "name", "level", "sections"],
        "properties": {
            "code": {"type": "string"},
            "name": {"type": "string", "nullable": True},
            "level": {"type": "string"},
            "sections": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["rows", "total"],
                    "properties": {
                        "rows": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": {"oneOf": [{"type": "string"}, _COUNT]},
                            },
                        },
                        "total": {"type": "object", "additionalProperties": _COUNT},
                    },
                },
            },
        },
    },
    "MonitoringSummary": {
        "type": "object",
        "required": ["year", "layout", "region", "children"],
        "properties": {
            "year": {"type": "integer"},
            "layout": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "label", "dimensions", "measures"],
                    "properties": {
                        "name": {"type": "string"},
                        "label": _LABEL,
                        "dimensions": {"type": "array", "items": {"type": "object"}},
                        "measures": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
            "region": {"$ref": "#/components/schemas/SummaryRegion"},
            "children": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/SummaryRegion"},
            },
        },
    },
    "StoredAttachment": {
        "type": "object",
        "required": ["attachment", "size", "created"],
        "properties": {
            "attachment": _DIGEST,
            "size": {"type": "integer", "minimum": 0},
            "created": {"type": "boolean"},
        },
    },
}

# Path parameters: what the routes' converters and services accept; anything else is a 404.
_PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "device_id": _UUID,
    "household_id": _UUID,
    "conflict_id": _UUID,
    "case_id": _UUID,
    "helper_id": _UUID,
    "measure_id": _UUID,
    "source_id": _UUID,
    "import_id": _UUID,
    "warning_id": _UUID,
    "form_id": {"type": "string", "pattern": FORM_ID},
    "version": {"type": "integer", "minimum": 1, "maximum": MAX_INT32},
    "digest": _DIGEST,
    "name": {"type": "string"},  # a job's name; any other is a 404
    "dataset": {"type": "string", "pattern": "^[a-z][a-z_]{0,63}$"},
    "job_id": _UUID,
    "region_code": {"type": "string", "pattern": f"^{REGION_CODE_RE.pattern}$"},
    "username": {"type": "string", "pattern": f"^{USERNAME_RE.pattern}$", "maxLength": 64},
    "enrolment_id": _UUID,
    "instance_id": _UUID,
}
_PATH_PARAMETER = re.compile(r"{(\w+)}")
# The error codes each HTTP status is sent with (410: `resync_required` for pull, `gone` else).
_STATUS_CODES: dict[int, list[str]] = {}
for _code in ErrorCode:
    _STATUS_CODES.setdefault(_code.http_status, []).append(_code.value)
_SUCCESS_TEXT = {200: "success", 201: "created", 204: "done, no body"}


def build_spec() -> dict[str, Any]:
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="fieldsync",
        version=__version__,
        openapi_version="3.0.3",
        plugins=[plugin],
        info={"description": "Offline-first household monitoring register: forms, sync, review."},
    )
    _describe_protocol_fields(plugin)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for name, schema in _SCHEMAS.items():
        spec.components.schema(name, schema=schema)
    for name, plain in _PLAIN_SCHEMAS.items():
        spec.components.schema(name, plain)
    # Cross-field rules of request schemas that marshmallow states in code (`@validates_schema`).
    spec.components.schemas["ResolveRequest"]["oneOf"] = [
        {"required": ["value"]},
        {"required": ["choose"]},
    ]
    # The configuration's values: only the declared settings, each a number or null.
    spec.components.schemas["WarningConfigUpdate"]["properties"]["values"] = {
        "type": "object",
        "properties": {
            spec_.name: {
                "type": "integer" if spec_.whole else "number",
                "minimum": float(spec_.minimum),
                "maximum": float(spec_.maximum),
                "nullable": True,
            }
            for spec_ in WARNING_SETTINGS.values()
        },
        "additionalProperties": False,
    }
    spec.components.schemas["HelperCreate"]["anyOf"] = [
        {"required": ["user"]},
        {"required": ["name", "phone"], "properties": {"phone": {"type": "string"}}},
    ]
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


# --- the protocol's marshmallow fields as JSON Schema -----------------------------------------


def _field_properties(field: fields.Field) -> dict[str, Any]:
    """What a protocol field accepts, as JSON Schema (apispec knows only marshmallow's own)."""
    described = getattr(field, "openapi", None)
    if isinstance(described, dict):  # a field that states its own (e.g. dates, money)
        return dict(described)
    if isinstance(field, ChoiceString):
        return {"type": "string", "enum": list(field.choices)}
    if isinstance(field, PatternString):
        return {
            "type": "string",
            "pattern": f"^{field.pattern.pattern}$",
            "maxLength": field.max_length,
        }
    if isinstance(field, ProtocolString):
        # NUL cannot be stored (PostgreSQL text refuses it); the server answers 422.
        return {
            "type": "string",
            "minLength": field.min_length,
            "maxLength": field.max_length,
            "pattern": "^[^\\u0000]*$",
        }
    if isinstance(field, UuidString):
        return dict(_UUID)
    if isinstance(field, HlcField):
        node = f"[\\x21-\\x7e]{{1,{MAX_NODE_LENGTH}}}"
        return {"type": "string", "pattern": f"^[0-9]{{13}}-[0-9]{{5}}-{node}$"}
    if isinstance(field, Rfc3339DateTime):
        return {"type": "string", "format": "date-time"}
    if isinstance(field, StrictInteger):
        return {"type": "integer", "minimum": field.minimum, "maximum": field.maximum}
    if isinstance(field, StrictBoolean):
        return {"type": "boolean"}
    if isinstance(field, EntityRevs):
        return {
            "type": "object",
            "additionalProperties": {"type": "integer", "minimum": field.minimum},
        }
    if isinstance(field, ClockMap):
        return {"type": "object", "additionalProperties": {"type": "string"}}
    if isinstance(field, ErrorDetails | JsonObject):
        return {"type": "object"}
    if isinstance(field, SubmissionList):
        return {"items": _ref("Submission"), "maxItems": field.max_items}
    if isinstance(field, ProtocolList) and field.max_items is not None:
        return {"maxItems": field.max_items}
    if isinstance(field, JsonValue):
        return {}  # any JSON value
    return {}


def _describe_protocol_fields(plugin: MarshmallowPlugin) -> None:
    converter = plugin.converter
    assert converter is not None  # set by APISpec(plugins=[plugin])

    def protocol_field(_: Any, field: fields.Field, ret: dict[str, Any], **kwargs: Any) -> Any:
        properties = _field_properties(field)
        if field.allow_none and properties.get("type"):
            properties["nullable"] = True
        return properties

    # apispec is untyped here.
    converter.add_attribute_function(protocol_field)  # type: ignore[no-untyped-call]


# --- operations --------------------------------------------------------------------------------


def _error(status: int, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": " or ".join(_STATUS_CODES[status]),
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    if headers:
        response["headers"] = headers
    return response


def _success(op: Operation, status: int) -> dict[str, Any]:
    response: dict[str, Any] = {"description": _SUCCESS_TEXT.get(status, "success")}
    if status == 204:
        return response
    if op.download:
        binary = {"schema": {"type": "string", "format": "binary"}}
        response["content"] = {op.download_type: binary}
        if op.attachment:
            response["headers"] = {
                "Content-Disposition": {
                    "description": "`attachment; filename=…` with the file name to save as",
                    "schema": {"type": "string"},
                }
            }
    else:
        schema = _ref(op.response) if op.response else {"type": "object"}
        response["content"] = {"application/json": {"schema": schema}}
    if op.etag:
        response["headers"] = {"ETag": {"schema": {"type": "string"}}}
    return response


def _error_statuses(op: Operation) -> set[int]:
    statuses = set(op.errors) | {500, 503}
    if op.roles is not None:
        statuses |= {401, 403}
    if _PATH_PARAMETER.search(op.path):
        statuses.add(404)
    if op.request == BINARY:
        statuses |= {413, 415}
    elif op.request is not None:
        statuses |= {400, 413, 415}
    return statuses


def _operation(op: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(status): _success(op, status) for status in (op.status, *op.also)
    }
    if op.etag:
        responses["304"] = {"description": "the client's copy (If-None-Match) is current"}
    retry_after = {
        "Retry-After": {
            "description": "seconds to wait",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
    for status in sorted(_error_statuses(op)):
        responses[str(status)] = _error(status, retry_after if status == 429 else None)
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_PARAMETERS[name]}
        for name in _PATH_PARAMETER.findall(op.path)
    ]
    if op.query is not None:
        parameters.append({"in": "query", "schema": op.query})
    if op.etag:
        parameters.append(
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            }
        )
    operation: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
        "parameters": parameters,
    }
    if op.roles is not None:
        operation["security"] = [{"bearer": []}]
        operation["description"] = "Roles: " + ", ".join(op.roles)
    if op.request is not None:
        operation["requestBody"] = {
            "required": op.request_required,
            "content": _request_content(op.request),
        }
    return operation


def _request_content(kind: str) -> dict[str, Any]:
    if kind == XLSFORM_MULTIPART:
        binary = {"type": "string", "format": "binary"}
        return {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {**binary, "description": "the workbook (.xlsx or .xls)"},
                        "choices_file": {
                            "type": "array",
                            "items": binary,
                            "description": "CSV files named by select_one_from_file questions",
                        },
                    },
                }
            }
        }
    if kind == MULTIPART:
        return {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        }
    if kind == BINARY:
        # Raw bytes; the Content-Type header (any media type) is stored and sent on download.
        return {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    if kind == ANY_JSON_OBJECT:
        return {"application/json": {"schema": {"type": "object"}}}
    return {"application/json": {"schema": _ref(kind)}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


bp = Blueprint("openapi", __name__, url_prefix="/api/v1")


@bp.get("/openapi.json")
def openapi_json() -> dict[str, Any]:
    return build_spec()
