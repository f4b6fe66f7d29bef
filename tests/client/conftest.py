"""Fixtures for the tablet client's tests: a tablet on a fake network, and answers to fill in."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, cast

import pytest

from forms.bundled import load_sample_answers
from sync_protocol.client import TabletClient
from sync_protocol.transport import RetryPolicy
from tests.client.fakes import BASE_URL, PASSWORD, FakeSyncServer, session_with

HOUSEHOLD = "6f1c2a4e-8b0d-4c3e-9a51-2d7e8f901a01"
MEMBERS = [
    "a3e5c7d9-1b2f-4a6c-8e0d-3f5a7b9c1d01",
    "a3e5c7d9-1b2f-4a6c-8e0d-3f5a7b9c1d02",
    "a3e5c7d9-1b2f-4a6c-8e0d-3f5a7b9c1d03",
]


class Sleeps(list[float]):
    """Records the backoff sleeps instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def fake() -> FakeSyncServer:
    return FakeSyncServer()


@pytest.fixture
def tablet_path(tmp_path: Path) -> Path:
    return tmp_path / "tablet.db"


@pytest.fixture
def open_tablet(tablet_path, fake, sleeps):
    """`open_tablet(**overrides)` → a TabletClient on the fake network (closed at teardown)."""
    opened: list[TabletClient] = []

    def factory(**overrides: Any) -> TabletClient:
        path = overrides.pop("path", tablet_path)
        options: dict[str, Any] = {
            "session": session_with(fake.adapter),
            "sleep": sleeps,
            "jitter": lambda: 1.0,
            "retry": RetryPolicy(max_attempts=4),
        }
        options.update(overrides)
        client = TabletClient(path, BASE_URL, **options)
        opened.append(client)
        return client

    yield factory
    for client in opened:
        client.close()


@pytest.fixture
def tablet(open_tablet) -> TabletClient:
    """A tablet logged in to the fake server, with the forms fetched."""
    client: TabletClient = open_tablet()
    client.login("collector", PASSWORD)
    client.refresh_forms()
    return client


def visit_answers(
    client: TabletClient,
    household_id: str = HOUSEHOLD,
    member_ids: list[str] | None = None,
    *,
    annual_income: float = 19800,
    insured: bool = True,
) -> dict[str, Any]:
    """The bundled household_visit sample, for this household and members, photo on the tablet."""
    data = copy.deepcopy(load_sample_answers("household_visit"))
    data["household_id"] = household_id
    data["annual_income"] = annual_income
    ids = MEMBERS if member_ids is None else member_ids
    rows = cast(list[dict[str, Any]], data["members"])[: len(ids)]
    for row, member_id in zip(rows, ids, strict=True):
        row["member_id"] = member_id
        row["insured"] = insured
    data["members"] = rows
    data["house_photo"] = client.add_attachment(
        b"\xff\xd8 a house photo", filename="house.jpg", content_type="image/jpeg"
    )
    return data
