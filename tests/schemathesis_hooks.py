"""Schemathesis hooks for `test_api_schemathesis.py`, loaded by the schemathesis CLI through
`SCHEMATHESIS_HOOKS`. A push only reaches storage with the device id its token is bound to, so
well-formed pushes get that device id and the published form, the way a tablet sends them, and
the first submission of each becomes a valid visit (the bundled sample, stamped now) so that the
merge into the register runs too. Malformed values are left alone: negative cases stay negative."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from typing import Any

import schemathesis

from forms.bundled import load_sample_answers

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
    well_formed = []
    for item in submissions:
        if isinstance(item, dict) and _is_valid_text(item.get("form_id")):
            item["form_id"] = form_id
            if type(item.get("form_version")) is int:
                item["form_version"] = int(version)
                well_formed.append(item)
    if device_id and well_formed and isinstance(well_formed[0].get("hlc"), str):
        well_formed[0].update(
            data=load_sample_answers(form_id),
            hlc=f"{int(time.time() * 1000):013d}-00000-{device_id}",
            collected_at=datetime.now(UTC).isoformat(timespec="seconds"),
            base_revs={},
        )


def _is_valid_text(value: object) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 100 and "\x00" not in value
