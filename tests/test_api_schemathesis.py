"""The running server answers as its OpenAPI description says, for every role.

Schemathesis (its CLI, as an operator would run it) generates requests from
`GET /api/v1/openapi.json` — schema-valid ones and deliberately invalid ones: empty query values,
`null` and `{}` bodies, wrong types, odd path parameters — and sends them to a real
`fieldsync serve` process on a fresh database (SQLite, and PostgreSQL when available), seeded
with regions, the published bundled forms, a household register and one user of every role.
The collector's token is bound to a device, so its pushes reach storage.

Every response must be: no server error (5xx), a documented status code, a documented content
type and headers, and a body that matches the documented schema; and a request the description
allows is not refused as malformed. Bounded and seeded: the same
requests on every run, a few minutes per database on a busy machine. On failure the message
lists each mismatch with the request that caused it as a `curl` line: fix the server when it is
wrong (a 5xx, a client mistake it mishandles), else `server/openapi.py`.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
import requests

from server.app import create_app
from server.users.models import Role
from server.users.service import create_user
from tests.conftest import PASSWORD, TOWNSHIP_A, VILLAGE_A1, cheap_settings
from tests.schemathesis_hooks import DEVICE_ENV, FORM_ENV
from tests.sync.harness import ServerProcess, build_register

pytestmark = pytest.mark.slow

# What every response must satisfy (schemathesis check names). The last one is the other
# direction: a request the description allows must not be refused as malformed (400/422), or the
# description is too loose (an empty `?offset=` it allowed, a `null` it allowed, …).
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
)
# Answers to a schema-valid request that are not the description's fault: the object is missing,
# taken or forbidden, or the server checks what JSON Schema cannot say. Per path, beyond those.
# (A 5xx is not_a_server_error's to report, once.)
ACCEPTABLE = ("2xx", "304", "401", "403", "404", "409", "429", "5xx")
SEMANTIC_REFUSALS: dict[str, tuple[str, ...]] = {
    "/api/v1/forms": ("422",),  # a definition whose text cannot be stored
    "/api/v1/forms/{form_id}/draft": ("422",),  # form_id differs from the URL's
    "/api/v1/forms/{form_id}/publish": ("422",),  # the draft has problems
    # a draft saved with problems cannot be written as a workbook (it says which)
    "/api/v1/forms/{form_id}/draft/xlsform": ("422",),
    # not an .xlsx workbook at all (415), or one whose sheets cannot be translated (422)
    "/api/v1/forms/import/xlsform": ("415", "422"),
    "/api/v1/attachments/{digest}": ("422",),  # the bytes do not hash to the digest
    "/api/v1/conflicts/{conflict_id}/resolve": ("422",),  # a value unsuited to the field
    "/api/v1/sync/pull": ("400", "410"),  # a cursor that is malformed or no longer honoured
    # evidence holding text that cannot be stored (NUL or lone surrogates in its keys)
    "/api/v1/monitoring/referrals": ("422",),
    "/api/v1/monitoring/referrals/department": ("422",),
    # evidence short of the region's settings (months above the line, causes left unresolved)
    "/api/v1/monitoring/exit-cases": ("422",),
    # a step's details short of the stage's rules (notice period, dates, type, attachments)
    "/api/v1/monitoring/cases/{case_id}/steps": ("422",),
    "/api/v1/monitoring/settings": ("422",),  # a value outside that setting's bounds
    # an unknown username, a date outside 1990-2100 or before the one it follows, an amount with
    # more than two decimals, a named helper left without a phone
    "/api/v1/households/{household_id}/helpers": ("422",),
    "/api/v1/households/{household_id}/measures": ("422",),
    "/api/v1/monitoring/helpers/{helper_id}": ("422",),
    "/api/v1/monitoring/helpers/{helper_id}/end": ("422",),
    "/api/v1/monitoring/measures/{measure_id}": ("422",),
    "/api/v1/households/{household_id}/timeline": ("422",),  # a cursor not made by the server
    # `to` before `from`, or more than 366 days between them
    "/api/v1/monitoring/summary/snapshots": ("422",),
    "/api/v1/monitoring/followups/overdue-trend": ("422",),
    # a mapping that does not fit its department, a schedule without a URL, an unparsable cron
    "/api/v1/departments/sources": ("422",),
    "/api/v1/departments/sources/{source_id}": ("422",),
    # a file that cannot be read through the source's mapping
    "/api/v1/departments/sources/{source_id}/imports": ("422",),
    "/api/v1/households": ("422",),  # a cursor not made by the server
    # a region code no region has (or, creating, a name taken only in case is 409)
    "/api/v1/users": ("422",),
    "/api/v1/users/{username}/grants": ("422",),
    # an enrolment code already used (409), revoked or expired (410), whose QR code is gone too
    "/api/v1/auth/enrol": ("410",),
    "/api/v1/devices/enrolments/{enrolment_id}/qr.svg": ("410",),
    # a reason of only spaces; corrected answers the push refuses again
    "/api/v1/submissions/{instance_id}/dismiss": ("422",),
    "/api/v1/submissions/{instance_id}/resubmit": ("422",),
}
PHASES = "examples,coverage,fuzzing"  # stateful needs links the description does not declare
# Per operation and phase: a minute or two per database on a busy 2-core machine. For a deeper
# look, raise it (and vary the seed) in the environment, e.g. FIELDSYNC_SCHEMATHESIS_EXAMPLES=200.
MAX_EXAMPLES = int(os.environ.get("FIELDSYNC_SCHEMATHESIS_EXAMPLES", "20"))
SEED = int(os.environ.get("FIELDSYNC_SCHEMATHESIS_SEED", "20261205"))
SERVER_START_TIMEOUT = 180.0  # a start is mostly imports; a loaded machine can take a while
REQUEST_TIMEOUT = 60
RUN_TIMEOUT = 1800  # for the roles' runs together, on a busy machine
SERVER_MEMORY = 3 * 2**30  # address space of the server process
LOGOUT = "/api/v1/auth/logout"  # revokes the token it is called with: run last, with its own token
# Operations that end other callers' tokens or shrink their scope, run after the logouts (each role
# with a token of its own, the admin last): schemathesis reuses ids and names from earlier answers
# (GET /api/v1/devices, GET /api/v1/users), so a device revoked or reassigned, a password reset, an
# account disabled or a grant withdrawn would otherwise log the other callers out, or narrow what
# they may see, before their own runs.
TOKEN_ENDING = (
    "/api/v1/devices/{device_id}/revoke",
    "/api/v1/devices/{device_id}/assign",
    "/api/v1/users/{username}/password",
    "/api/v1/users/{username}/disable",
    "/api/v1/users/{username}/grants/{region_code}",
)


@dataclass(frozen=True)
class Caller:
    role: Role
    username: str
    regions: tuple[str, ...]
    bound_to_device: bool = False


CALLERS = (
    Caller(Role.ADMIN, "st_admin", ()),
    Caller(Role.SUPERVISOR, "st_supervisor", (TOWNSHIP_A,)),
    Caller(Role.COLLECTOR, "st_collector", (VILLAGE_A1,), bound_to_device=True),
)


def test_every_response_matches_the_openapi_description_for_every_role(db_url, tmp_path):
    _seed(db_url, tmp_path / "seed")
    server = ServerProcess(db_url, tmp_path / "server")
    try:
        server.launch()
        assert server.process is not None
        # A request that makes the server allocate without bound fails as a 500 in the report
        # instead of exhausting the machine's memory.
        resource.prlimit(server.process.pid, resource.RLIMIT_AS, (SERVER_MEMORY, SERVER_MEMORY))
        _wait_until_healthy(server)
        device_id = str(uuid.uuid4())
        # Log in before fuzzing: the fuzzed logins fail on purpose and may throttle this address.
        tokens = {c.role: _login(server, c, device_id) for c in CALLERS}
        logout_tokens = {c.role: _login(server, c, device_id) for c in CALLERS}
        ending_tokens = {c.role: _login(server, c, device_id) for c in CALLERS}
        env = {DEVICE_ENV: device_id, FORM_ENV: "household_visit:1"}
        # The roles' runs go at once (each is mostly waiting for the server's answers); then the
        # logouts, since each revokes the token it is called with; then, one role at a time and
        # the admin last, what ends other callers' tokens or narrows their scope.
        runs = _together([_schemathesis(server, tmp_path, c, tokens[c.role], env) for c in CALLERS])
        runs += _together(
            [
                _schemathesis(server, tmp_path, c, logout_tokens[c.role], env, only=(LOGOUT,))
                for c in CALLERS
            ]
        )
        for caller in reversed(CALLERS):
            token = ending_tokens[caller.role]
            runs += _together(
                [_schemathesis(server, tmp_path, caller, token, env, only=TOKEN_ENDING)]
            )
    finally:
        server.kill()
    server_log = (server.instance_dir / f"server-{server.port}.log").read_text(errors="replace")
    failed = [run for run in runs if not run.passed]
    summary = "\n".join(run.summary for run in runs)
    assert not failed, (
        f"schemathesis found mismatches on {db_url.split(':')[0]}:\n{summary}\n\n"
        + "\n\n".join(run.failures for run in failed)
        + f"\n\nserver log (tail):\n{server_log[-5000:]}"
    )
    # Guard against a run that silently tested nothing (a schema that failed to load, say).
    assert all(run.cases > 0 for run in runs), summary


def _seed(db_url: str, instance_dir: Path) -> None:
    app = create_app(cheap_settings(db_url, instance_dir))
    rt = app.extensions["fieldsync"]
    try:
        build_register(rt, {})  # regions, bundled forms published (version 1), two households
        with rt.db.unit_of_work() as session:
            for caller in CALLERS:
                create_user(
                    session,
                    rt.passwords,
                    username=caller.username,
                    password=PASSWORD,
                    role=caller.role,
                    regions=list(caller.regions),
                )
    finally:
        rt.db.dispose()


def _wait_until_healthy(server: ServerProcess) -> None:
    assert server.process is not None
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    pause = 0.05
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode}: {server.log()}")
        try:
            if requests.get(f"{server.url}/api/v1/health", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
    raise AssertionError(f"server not healthy within {SERVER_START_TIMEOUT} s: {server.log()}")


def _login(server: ServerProcess, caller: Caller, device_id: str) -> str:
    body = {"username": caller.username, "password": PASSWORD}
    if caller.bound_to_device:
        body["device_id"] = device_id
    response = requests.post(f"{server.url}/api/v1/auth/login", json=body, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


@dataclass(frozen=True)
class Run:
    role: str
    what: str
    returncode: int
    output: str

    @property
    def passed(self) -> bool:
        return self.returncode == 0

    @property
    def cases(self) -> int:
        found = re.search(r"(\d+) generated", self.output)
        return int(found.group(1)) if found else 0

    @property
    def summary(self) -> str:
        last = self.output.strip().splitlines()[-1:] or ["(no output)"]
        outcome = "ok" if self.passed else f"FAILED (exit {self.returncode})"
        return f"  {self.role:<10} {self.what:<22} {outcome}: {last[0].strip('= ')}"

    @property
    def failures(self) -> str:
        """The FAILURES section of the report (each with its curl line), or the whole output
        when there is none (the run broke before testing)."""
        text = self.output
        start = text.find(" FAILURES ")
        end = min(
            (i for i in (text.find(" WARNINGS ", start), text.find(" SUMMARY ", start)) if i > 0),
            default=len(text),
        )
        section = text[text.rfind("\n", 0, start) + 1 : end] if start >= 0 else text
        return f"--- {self.role}, {self.what} ---\n{section.strip()[-20000:]}"


def _schemathesis(
    server: ServerProcess,
    tmp_path: Path,
    caller: Caller,
    token: str,
    env: dict[str, str],
    *,
    only: tuple[str, ...] | None = None,
) -> Started:
    what = "all" if only is None else "logout" if only == (LOGOUT,) else "token-ending"
    workdir = tmp_path / f"schemathesis-{caller.role.value}-{what}"
    workdir.mkdir()
    (workdir / "schemathesis.toml").write_text(_config())  # read from the working directory
    which, chosen = (
        ("--include-path", only) if only else ("--exclude-path", (LOGOUT, *TOKEN_ENDING))
    )
    paths = [argument for path in chosen for argument in (which, path)]
    command = [
        _schemathesis_command(),
        "run",
        f"{server.url}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        PHASES,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        str(REQUEST_TIMEOUT),
        "--generation-database",
        "none",
        "--continue-on-failure",
        "--no-color",
        *paths,
    ]
    output = (workdir / "output.txt").open("w+")
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env={
            **os.environ,
            **env,
            "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),  # for tests.schemathesis_hooks
            "COLUMNS": "120",
        },
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Started(
        caller.role.value,
        f"only {what}" if only else "all but logout and token-ending",
        process,
        output,
    )


@dataclass(frozen=True)
class Started:
    """A schemathesis run under way, its report going to a file."""

    role: str
    what: str
    process: subprocess.Popen[str]
    output: IO[str]

    def finish(self, deadline: float) -> Run:
        try:
            returncode = self.process.wait(timeout=max(deadline - time.monotonic(), 1.0))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            returncode = -9
        self.output.seek(0)
        text = self.output.read()
        self.output.close()
        if returncode == -9:
            text += f"\n(killed: not finished within {RUN_TIMEOUT} s)"
        return Run(self.role, self.what, returncode, text)


def _together(started: list[Started]) -> list[Run]:
    deadline = time.monotonic() + RUN_TIMEOUT
    return [run.finish(deadline) for run in started]


def _config() -> str:
    def statuses(extra: tuple[str, ...] = ()) -> str:
        return ", ".join(f'"{status}"' for status in (*ACCEPTABLE, *extra))

    lines = ["[checks.positive_data_acceptance]", f"expected-statuses = [{statuses()}]"]
    for path, extra in SEMANTIC_REFUSALS.items():
        lines += [
            "",
            "[[operations]]",
            f'include-path = "{path}"',
            f"checks.positive_data_acceptance.expected-statuses = [{statuses(extra)}]",
        ]
    return "\n".join(lines) + "\n"


def _schemathesis_command() -> str:
    script = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert script, "schemathesis is not installed (install the 'dev' extra)"
    return script
