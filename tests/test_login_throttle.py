"""Login throttling, through the real WSGI app on both databases: guessing is slowed by growing
waits, the real user's own tablet still gets in, an office of hundreds of tablets behind one
address logs in, parallel guesses get no more password checks than the limit, and
`fieldsync users unlock` ends a wait."""

from __future__ import annotations

import json
import multiprocessing
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, update

from server.app import create_app
from server.audit.models import AuditEntry
from server.db import utcnow
from server.users.models import Role
from server.users.service import create_user
from tests.conftest import PASSWORD, VILLAGE_A1, cheap_settings

WRONG = "wrong-password"


def _login(client, username, password=PASSWORD, **extra):
    return client.post(
        "/api/v1/auth/login", json={"username": username, "password": password, **extra}
    )


def _end_waits(rt) -> None:
    """Move every throttle wait into the past, as if its time had passed."""
    from server.auth.models import LoginThrottle

    with rt.db.unit_of_work() as session:
        session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.blocked_until.is_not(None))
            .values(blocked_until=utcnow() - timedelta(seconds=1))
        )


def _age_counts(rt, seconds: int) -> None:
    """Make every counted failure `seconds` older."""
    from server.auth.models import LoginThrottle

    with rt.db.unit_of_work() as session:
        for row in session.scalars(select(LoginThrottle)):
            row.counted_at -= timedelta(seconds=seconds)
            if row.blocked_until is not None:
                row.blocked_until -= timedelta(seconds=seconds)


def _statuses(responses) -> list[int]:
    return [response.status_code for response in responses]


def test_failures_beyond_the_allowance_make_the_account_wait_longer_each_time(
    client, create_user_, rt
):
    create_user_("li.ming")
    allowance, delay = rt.settings.login_max_failures_per_user, rt.settings.login_delay
    assert (
        _statuses(_login(client, "li.ming", WRONG) for _ in range(allowance)) == [401] * allowance
    )
    waits = []
    for _ in range(3):
        refused = _login(client, "li.ming")  # even the right password waits
        assert refused.status_code == 429
        assert refused.get_json()["error"]["code"] == "rate_limited"
        retry_after = int(refused.headers["Retry-After"])
        assert refused.get_json()["error"]["details"]["retry_after"] == retry_after
        waits.append(retry_after)
        _end_waits(rt)
        assert _login(client, "li.ming", WRONG).status_code == 401
    # (A few seconds of slack: the machine may be busy between the failure and the question.)
    assert delay - 10 <= waits[0] <= delay
    assert 2 * delay - 10 <= waits[1] <= 2 * delay
    assert 4 * delay - 10 <= waits[2] <= 4 * delay
    # Another user from the same address is not affected by this user's failures.
    create_user_("wang.fang")
    assert _login(client, "wang.fang").status_code == 200


def test_the_wait_is_capped(client, create_user_, rt):
    create_user_("li.ming")
    for _ in range(rt.settings.login_max_failures_per_user + 12):
        _end_waits(rt)
        assert _login(client, "li.ming", WRONG).status_code == 401
    refused = _login(client, "li.ming")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) == rt.settings.login_max_delay


def test_attempts_refused_while_waiting_do_not_extend_the_wait(client, create_user_, rt):
    create_user_("li.ming")
    for _ in range(rt.settings.login_max_failures_per_user):
        _login(client, "li.ming", WRONG)
    waits = []
    for password in (WRONG, WRONG, PASSWORD, WRONG, PASSWORD):
        refused = _login(client, "li.ming", password)
        assert refused.status_code == 429
        waits.append(int(refused.headers["Retry-After"]))
    assert waits == sorted(waits, reverse=True)
    assert waits[0] <= rt.settings.login_delay
    _end_waits(rt)
    assert _login(client, "li.ming").status_code == 200


def test_the_right_password_from_the_users_own_tablet_gets_in_while_guesses_wait(
    client, create_user_, rt
):
    create_user_("li.ming")
    tablet = str(uuid.uuid4())
    assert _login(client, "li.ming", device_id=tablet).status_code == 200
    # Someone guessing without the tablet's id, slowly and for a long time.
    guesses = []
    for _ in range(rt.settings.login_max_failures_per_user + 6):
        guesses.append(_login(client, "li.ming", WRONG).status_code)
        guesses.append(_login(client, "li.ming", WRONG, device_id=str(uuid.uuid4())).status_code)
    assert (
        set(guesses) == {401, 429} and guesses.count(401) == rt.settings.login_max_failures_per_user
    )
    assert _login(client, "li.ming").status_code == 429
    # The tablet, even after a typo of its own.
    assert _login(client, "li.ming", WRONG, device_id=tablet).status_code == 401
    signed_in = _login(client, "li.ming", device_id=tablet)
    assert signed_in.status_code == 200 and signed_in.get_json()["token"]


def test_guesses_naming_the_users_tablet_have_an_allowance_of_their_own(client, create_user_, rt):
    create_user_("li.ming")
    tablet = str(uuid.uuid4())
    assert _login(client, "li.ming", device_id=tablet).status_code == 200
    allowance = rt.settings.login_max_failures_per_user
    statuses = _statuses(
        _login(client, "li.ming", WRONG, device_id=tablet) for _ in range(allowance + 3)
    )
    assert statuses == [401] * allowance + [429] * 3
    assert _login(client, "li.ming", device_id=tablet).status_code == 429
    # Logins without the tablet keep their own allowance.
    assert _login(client, "li.ming").status_code == 200


def test_a_successful_login_ends_the_run_of_failures(client, create_user_, rt):
    create_user_("li.ming")
    allowance = rt.settings.login_max_failures_per_user
    for _ in range(3):
        statuses = _statuses(_login(client, "li.ming", WRONG) for _ in range(allowance - 1))
        assert statuses == [401] * (allowance - 1)
        assert _login(client, "li.ming").status_code == 200


def test_failures_are_forgotten_a_window_after_the_last_one(client, create_user_, rt):
    create_user_("li.ming")
    allowance = rt.settings.login_max_failures_per_user
    for _ in range(allowance):
        _login(client, "li.ming", WRONG)
    assert _login(client, "li.ming", WRONG).status_code == 429
    _age_counts(rt, rt.settings.login_window + 1)
    statuses = _statuses(_login(client, "li.ming", WRONG) for _ in range(allowance))
    assert statuses == [401] * allowance


def test_three_hundred_tablets_behind_one_address_all_log_in_the_same_morning(client, regions, rt):
    tablets = {f"collector{i:03d}": str(uuid.uuid4()) for i in range(300)}
    with rt.db.unit_of_work() as session:
        for username in tablets:
            create_user(
                session,
                rt.passwords,
                username=username,
                password=PASSWORD,
                role=Role.COLLECTOR,
                regions=[VILLAGE_A1],
            )
    mistyped = set(list(tablets)[::25])  # a dozen of them mistype their password first
    tokens = {}
    for username, device_id in tablets.items():
        if username in mistyped:
            assert _login(client, username, WRONG, device_id=device_id).status_code == 401
            assert _login(client, username, PASSWORD[:-1], device_id=device_id).status_code == 401
        response = _login(client, username, device_id=device_id)
        assert response.status_code == 200, (username, response.get_json())
        tokens[username] = response.get_json()["token"]
    assert len(set(tokens.values())) == 300
    # And again after lunch, with their tokens lost.
    for username, device_id in list(tablets.items())[:50]:
        assert _login(client, username, device_id=device_id).status_code == 200


@pytest.fixture
def strict_address_app(db_url: str, tmp_path: Path, app: Flask):
    """A second app on the same database allowing only 4 failed logins per address."""
    settings = cheap_settings(db_url, tmp_path / "strict").replace(login_max_failures_per_address=4)
    strict = create_app(settings)
    yield strict
    strict.extensions["fieldsync"].db.dispose()


def test_failed_logins_from_one_address_are_limited_across_usernames(
    strict_address_app, create_user_
):
    client = strict_address_app.test_client()
    create_user_("li.ming")
    statuses = _statuses(_login(client, f"guess{i}", WRONG) for i in range(6))
    assert statuses == [401] * 4 + [429] * 2
    refused = _login(client, "li.ming")
    assert refused.status_code == 429
    assert "address" in refused.get_json()["error"]["message"]
    # Failures leak away: one slot opens after LOGIN_WINDOW / limit seconds.
    assert 0 < int(refused.headers["Retry-After"]) <= 3600 // 4
    # Another address is not affected.
    other = client.post(
        "/api/v1/auth/login",
        json={"username": "li.ming", "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert other.status_code == 200


def test_successful_logins_never_count_against_the_address(strict_address_app, create_user_):
    client = strict_address_app.test_client()
    for i in range(12):
        create_user_(f"collector{i}")
    for i in range(12):
        if i % 4 == 0:
            assert _login(client, f"collector{i}", WRONG).status_code == 401
        assert _login(client, f"collector{i}").status_code == 200


def test_known_tablets_log_in_from_an_address_that_is_held_back(strict_address_app, create_user_):
    client = strict_address_app.test_client()
    create_user_("li.ming")
    tablet = str(uuid.uuid4())
    assert _login(client, "li.ming", device_id=tablet).status_code == 200
    for i in range(4):
        _login(client, f"guess{i}", WRONG)
    assert _login(client, "li.ming").status_code == 429
    assert _login(client, "li.ming", device_id=tablet).status_code == 200


def _parallel(app: Flask, bodies: list[dict]) -> list[int]:
    """Post every body to the login endpoint at once, each from its own thread."""
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = [0] * len(bodies)

    def attempt(index: int) -> None:
        client = app.test_client()
        barrier.wait(timeout=300)  # generous: a thread that never arrives fails the test
        statuses[index] = client.post("/api/v1/auth/login", json=bodies[index]).status_code

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def _count_password_checks(app: Flask, monkeypatch) -> list[str]:
    """Record every password check the app makes (the check itself is unchanged)."""
    passwords = app.extensions["fieldsync"].passwords
    verify = passwords.verify
    checked: list[str] = []
    lock = threading.Lock()

    def counting_verify(stored_hash, password):
        with lock:
            checked.append(password)
        return verify(stored_hash, password)

    monkeypatch.setattr(passwords, "verify", counting_verify)
    return checked


def test_parallel_wrong_guesses_get_no_more_password_checks_than_the_allowance(
    app, create_user_, rt, monkeypatch
):
    create_user_("li.ming")
    allowance = rt.settings.login_max_failures_per_user
    checked = _count_password_checks(app, monkeypatch)
    statuses = _parallel(app, [{"username": "li.ming", "password": WRONG}] * 12)
    assert len(checked) == allowance
    assert sorted(statuses) == [401] * allowance + [429] * (12 - allowance)


def test_parallel_failures_from_one_address_stop_at_the_address_limit(
    strict_address_app, create_user_, monkeypatch
):
    checked = _count_password_checks(strict_address_app, monkeypatch)
    statuses = _parallel(
        strict_address_app, [{"username": f"guess{i}", "password": WRONG} for i in range(10)]
    )
    assert len(checked) == 4
    assert sorted(statuses) == [401] * 4 + [429] * 6


def _guessing_process(
    db_url: str, instance_dir: str, username: str, guesses: int, barrier, out: str
) -> None:
    """A worker process with its own app on the shared database: wrong guesses, one at a time."""
    app = create_app(cheap_settings(db_url, Path(instance_dir)))
    client = app.test_client()
    barrier.wait(timeout=300)
    statuses = [_login(client, username, WRONG).status_code for _ in range(guesses)]
    Path(out).write_text(json.dumps(statuses))
    app.extensions["fieldsync"].db.dispose()


def test_wrong_guesses_from_several_processes_get_no_more_checks_than_the_allowance(
    db_url, create_user_, rt, tmp_path
):
    create_user_("li.ming")
    context = multiprocessing.get_context("spawn")
    workers = 3
    barrier = context.Barrier(workers)
    outputs = [tmp_path / f"guesses-{i}.json" for i in range(workers)]
    processes = [
        context.Process(
            target=_guessing_process,
            args=(db_url, str(tmp_path / f"worker-{i}"), "li.ming", 3, barrier, str(out)),
        )
        for i, out in enumerate(outputs)
    ]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join(600)  # generous: spawning an app is slow on a busy machine
        assert [p.exitcode for p in processes] == [0] * workers
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(5)
    statuses = sorted(status for out in outputs for status in json.loads(out.read_text()))
    allowance = rt.settings.login_max_failures_per_user
    # 401 means the password was checked; 429 means it was not.
    assert statuses == [401] * allowance + [429] * (3 * workers - allowance)


def test_users_unlock_ends_the_wait_and_is_audited(client, create_user_, rt, cli):
    create_user_("li.ming")
    tablet = str(uuid.uuid4())
    _login(client, "li.ming", device_id=tablet)
    for _ in range(rt.settings.login_max_failures_per_user):
        _login(client, "li.ming", WRONG)
        _login(client, "li.ming", WRONG, device_id=tablet)
    assert _login(client, "li.ming").status_code == 429
    assert _login(client, "li.ming", device_id=tablet).status_code == 429
    result = cli("users", "unlock", "li.ming")
    assert result.exit_code == 0, result.output
    assert "unlocked li.ming" in result.output
    assert _login(client, "li.ming").status_code == 200
    assert _login(client, "li.ming", device_id=tablet).status_code == 200
    with rt.db.unit_of_work(write=False) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "login_unlocked")
        ).one()
    assert entry.object_id == "li.ming" and entry.user_id is None


def test_users_unlock_address_clears_an_address_and_is_audited(
    strict_address_app, create_user_, rt, cli
):
    client = strict_address_app.test_client()
    create_user_("li.ming")
    for i in range(4):
        _login(client, f"guess{i}", WRONG)
    assert _login(client, "li.ming").status_code == 429
    result = cli("users", "unlock", "--address", "127.0.0.1")
    assert result.exit_code == 0, result.output
    assert _login(client, "li.ming").status_code == 200
    with rt.db.unit_of_work(write=False) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "login_address_cleared")
        ).one()
    assert entry.object_id == "127.0.0.1"


def test_users_unlock_names_an_unknown_user(create_user_, cli):
    result = cli("users", "unlock", "nobody")
    assert result.exit_code == 1
    assert "no user named 'nobody'" in result.output
    assert cli("users", "unlock").exit_code == 2


def test_login_limits_are_refused_when_they_cannot_work(tmp_path):
    from server.config import ConfigError, Settings

    with pytest.raises(ConfigError, match="LOGIN_WINDOW"):
        Settings(instance_dir=tmp_path, login_window=600, login_max_delay=900)
    with pytest.raises(ConfigError, match="LOGIN_"):
        Settings(instance_dir=tmp_path, login_max_failures_per_address=0)


def test_an_admin_logs_in_the_same_way(client, create_user_, rt):
    create_user_("admin", Role.ADMIN)
    for _ in range(rt.settings.login_max_failures_per_user):
        assert _login(client, "admin", WRONG).status_code == 401
    assert _login(client, "admin").status_code == 429


def test_throttle_rows_that_hold_nothing_are_removed_as_failures_come_in(client, create_user_, rt):
    from server.auth.models import LoginThrottle

    create_user_("li.ming")
    for i in range(3):
        _login(client, f"guess{i}", WRONG)
    assert _login(client, "li.ming").status_code == 200
    with rt.db.unit_of_work(write=False) as session:
        subjects = set(session.scalars(select(LoginThrottle.subject)))
    # A successful login leaves nothing behind for its account.
    assert subjects == {"guess0", "guess1", "guess2", "127.0.0.1"}
    _age_counts(rt, rt.settings.login_window + 1)
    _login(client, "guess9", WRONG)
    with rt.db.unit_of_work(write=False) as session:
        subjects = set(session.scalars(select(LoginThrottle.subject)))
    assert subjects == {"guess9", "127.0.0.1"}


def test_waits_double_from_the_first_delay_up_to_the_cap(tmp_path):
    from server.auth.throttle import failure_delay
    from server.config import Settings

    settings = Settings(instance_dir=tmp_path)
    waits = [failure_delay(failures, settings) for failures in range(1, 13)]
    assert waits == [0, 0, 0, 0, 30, 60, 120, 240, 480, 900, 900, 900]
    assert failure_delay(10**9, settings) == 900
