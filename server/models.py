"""Every table of fieldsync, imported in one place so the metadata is complete (alembic, tests)."""

from server.attachments.models import Attachment, AttachmentHolder, AttachmentRef
from server.audit.models import AuditEntry
from server.auth.models import LoginThrottle, Token
from server.changes.models import Change, ScopeSnapshot
from server.conflicts.models import Conflict
from server.db import Base
from server.departments.models import DepartmentFact, DepartmentImport, DepartmentSource
from server.devices.models import Device, DeviceEnrolment, DeviceSequenceGap
from server.exports.job_models import ExportJob
from server.forms.models import Form, FormVersion
from server.households.models import Household, Member
from server.monitoring.help_models import (
    AssistanceMeasure,
    HelpEvent,
    HouseholdFollowup,
    HouseholdHelper,
)
from server.monitoring.models import CaseStep, MonitoringCase, MonitoringSetting, Referral
from server.monitoring.snapshot_models import OverdueFollowupCount, SummarySnapshot
from server.regions.models import Region
from server.scheduler.models import JobRun
from server.submissions.models import Submission
from server.users.models import RegionGrant, User
from server.warnings.models import RiskWarning, RiskWarningEvent, WarningSetting

metadata = Base.metadata

__all__ = [
    "AssistanceMeasure",
    "Attachment",
    "AttachmentHolder",
    "AttachmentRef",
    "AuditEntry",
    "CaseStep",
    "Change",
    "Conflict",
    "DepartmentFact",
    "DepartmentImport",
    "DepartmentSource",
    "Device",
    "DeviceEnrolment",
    "DeviceSequenceGap",
    "ExportJob",
    "Form",
    "FormVersion",
    "HelpEvent",
    "Household",
    "HouseholdFollowup",
    "HouseholdHelper",
    "JobRun",
    "LoginThrottle",
    "Member",
    "MonitoringCase",
    "MonitoringSetting",
    "OverdueFollowupCount",
    "Referral",
    "Region",
    "RegionGrant",
    "RiskWarning",
    "RiskWarningEvent",
    "ScopeSnapshot",
    "Submission",
    "SummarySnapshot",
    "Token",
    "User",
    "WarningSetting",
    "metadata",
]
