"""Schemathesis hooks for `test_api_schemathesis.py`, loaded by the schemathesis CLI through
`SCHEMATHESIS_HOOKS`. A push only reaches storage with the device id its token is bound to, so
well-formed pushes get that device id (and the published form), the way a tablet sends them;
malformed values are left alone so that negative cases stay negative."""

from __future__ import annotations

import os
import re
from typing import Any

import schemathesis

DEVICE_ENV = "FIELDSYNC_SCHEMATHESIS_DEVICE_ID"
FORM_ENV = "FIELDSYNC_SCHEMATHESIS_FORM"  # "<form_id>:<version>"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    if case.operation.path != "/api/v1/sync/push" or not isinstance(case.body, dict):
        return
    device_id = os.environ.get(DEVICE_ENV)
    if device_id and _UUID.fullmatch(str(case.body.get("device_id"))):
        case.body["device_id"] = device_id
    form = os.environ.get(FORM_ENV)
    submissions = case.body.get("submissions")
    if not form or not isinstance(submissions, list):
        return
    form_id, version = form.split(":")
    for item in submissions:
        if isinstance(item, dict) and _is_valid_text(item.get("form_id")):
            item["form_id"] = form_id
            if type(item.get("form_version")) is int:
                item["form_version"] = int(version)


def _is_valid_text(value: object) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 100 and "\x00" not in value
