"""Migrations produce exactly the models' schema on SQLite and PostgreSQL, both ways."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Uuid, bindparam, column, create_engine, inspect, select, table, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forms.register import ENTITIES
from server import migrate
from server.changes.models import Change
from server.db import JsonDocument, UtcDateTime
from server.households.models import Household, Member
from server.households.versions import FieldVersion, encode_versions
from server.models import metadata
from tests.conftest import VILLAGE_A1


def _schema_diff(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_migrations_produce_exactly_the_models_schema(db_url):
    assert _schema_diff(db_url) == []


def test_downgrade_to_base_then_upgrade_restores_the_schema(db_url):
    migrate.downgrade(db_url, "base")
    engine = create_engine(db_url)
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    engine.dispose()
    assert tables == set()
    migrate.upgrade(db_url)
    assert _schema_diff(db_url) == []
    engine = create_engine(db_url)
    assert migrate.migration_state(engine).is_current
    engine.dispose()


def test_every_register_field_has_a_column():
    tables = {"household": Household.__table__, "member": Member.__table__}
    for entity, spec in ENTITIES.items():
        columns = set(tables[entity].columns.keys())
        for name, field in spec.fields.items():
            if field.sensitive and field.kind == "text":
                assert {f"{name}_hash", f"{name}_masked", f"{name}_cipher"} <= columns, name
                assert name not in columns, f"{entity}.{name} must never be stored in clear"
            else:
                assert name in columns, f"{entity}.{name} has no column"


def test_server_owned_fields_are_the_workflow_ones():
    owned = {(e, n) for e, s in ENTITIES.items() for n, f in s.fields.items() if f.server_owned}
    assert owned == {
        ("household", "monitoring_type"),
        ("household", "monitoring_status"),
        ("household", "risk_causes"),
    }


_CHANGE_COLUMNS = "entity_type, entity_id, clock, rev, village_code, txid, changed_at"
_VALUES = {
    "per_capita_income": 5800,
    "head_name": "王秀英",
    "insured": True,
    "risk_causes": ["illness", "disability"],
    "note": None,
    "ratio": 0.25,
}


def test_change_log_rows_become_per_entity_and_split_back(db_url):
    """0003 turns each per-field row into a one-field map (same seq); going back splits maps."""
    migrate.downgrade(db_url, "0002")
    engine = create_engine(db_url)
    entity = uuid.uuid4()
    stamp = "1764000000000-00000-server"
    with engine.begin() as conn:
        for name, value in _VALUES.items():
            conn.execute(
                text(
                    f"INSERT INTO changes ({_CHANGE_COLUMNS}, field, value) VALUES "
                    "('household', :id, :clock, 1, '990102001001', 7, :at, :field, :value)"
                ).bindparams(bindparam("value", type_=JsonDocument)),
                {
                    "id": entity.hex if conn.dialect.name == "sqlite" else entity,
                    "clock": stamp,
                    "at": datetime(2026, 11, 25, tzinfo=UTC),
                    "field": name,
                    "value": value,
                },
            )
        before = conn.execute(text("SELECT seq, field FROM changes ORDER BY seq")).all()
    migrate.upgrade(db_url)
    with Session(engine) as session:
        rows = session.scalars(select(Change).order_by(Change.seq)).all()
        assert [(row.seq, row.fields) for row in rows] == [
            (seq, {name: _VALUES[name]}) for seq, name in before
        ]
        # A write of several fields, as the server logs them now.
        session.add(
            Change(
                entity_type="household",
                entity_id=entity,
                fields=_VALUES,
                clock=stamp,
                rev=2,
                village_code="990102001001",
                txid=8,
            )
        )
        session.commit()
    migrate.downgrade(db_url, "0002")
    with engine.connect() as conn:
        split = conn.execute(
            select(column("field"), column("value", JsonDocument), column("rev"))
            .select_from(table("changes"))
            .order_by(column("seq"))
        ).all()
    engine.dispose()
    assert sorted((field, json.dumps(value), rev) for field, value, rev in split) == sorted(
        [(name, json.dumps(value), 1) for name, value in _VALUES.items()]
        + [(name, json.dumps(value), 2) for name, value in _VALUES.items()]
    )
    migrate.upgrade(db_url)
    assert _schema_diff(db_url) == []


_OLD_MAPS = ("clocks", "field_revs", "origins", "sources")


def _old_maps(engine, table_name: str) -> dict[str, dict[str, dict]]:
    """Each row's four per-field maps as revision 0003 stores them, by id text."""
    t = table(table_name, column("id"), *(column(c, JsonDocument) for c in _OLD_MAPS))
    with engine.connect() as conn:
        return {str(row.id).replace("-", ""): row._asdict() for row in conn.execute(select(t))}


def _all_field_versions(session: Session) -> dict[tuple[str, str], dict[str, FieldVersion]]:
    rows: list[tuple[str, Household | Member]] = [
        ("household", h) for h in session.scalars(select(Household))
    ]
    rows += [("member", m) for m in session.scalars(select(Member))]
    return {(kind, str(row.id)): row.field_versions for kind, row in rows}


def test_field_versions_become_one_column_and_split_back(db_url, rt, village_households):
    """0004 stores each distinct write once and points fields at it; going back (and forth
    again) restores every field's clock, revision, origin and submission."""
    household_id = village_households[VILLAGE_A1]["household"]
    device, submission = str(uuid.uuid4()), str(uuid.uuid4())
    visit = FieldVersion(f"1764000000000-00001-{device}", 2, device, submission)
    with rt.db.unit_of_work() as session:
        household = session.get(Household, household_id)
        assert household is not None
        versions = household.field_versions
        versions.update(per_capita_income=visit, category=visit)
        household.versions = encode_versions(versions)
        household.rev = 3
    with rt.db.unit_of_work(write=False) as session:
        before = _all_field_versions(session)
    rt.db.dispose()
    document = next(
        v for (kind, key), v in before.items() if key == str(household_id) and kind == "household"
    )
    assert len(encode_versions(document)["writes"]) == 2  # the load's write and the visit's

    migrate.downgrade(db_url, "0003")
    engine = create_engine(db_url)
    households = _old_maps(engine, "households")
    row = households[household_id.hex]
    assert row["clocks"]["per_capita_income"] == visit.clock
    assert row["field_revs"] == {name: v.rev for name, v in document.items()}
    assert row["origins"]["village_code"] == "system"
    assert row["sources"]["category"] == submission and row["sources"]["village_code"] is None
    # Rows written before field revisions were explicit: a missing one is the row's revision.
    maps = table("households", column("id"), column("field_revs", JsonDocument))
    with engine.begin() as conn:
        conn.execute(
            maps.update()
            .where(column("id") == row["id"])
            .values(field_revs={k: v for k, v in row["field_revs"].items() if k != "category"})
        )
    engine.dispose()

    migrate.upgrade(db_url)
    assert _schema_diff(db_url) == []
    engine = create_engine(db_url)
    with Session(engine) as session:
        after = _all_field_versions(session)
    engine.dispose()
    key = ("household", str(household_id))
    expected = {**before, key: {**before[key], "category": visit._replace(rev=3)}}
    assert after == expected


def test_sequence_gaps_become_ranges_and_expand_back(db_url, rt, create_user_):
    """0007 joins each device's missing numbers into ranges of consecutive ones (earliest time
    noticed); going back expands them again."""
    from server.devices.models import Device, DeviceSequenceGap
    from server.users.models import User

    create_user_("collector")
    device_id = uuid.uuid4()
    with rt.db.unit_of_work() as session:
        user_id = session.scalars(select(User.id).where(User.username == "collector")).one()
        session.add(Device(id=device_id, registered_by_id=user_id, highest_seq=10))
    rt.db.dispose()
    migrate.downgrade(db_url, "0006")
    engine = create_engine(db_url)
    early, late = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
    numbers = table(
        "device_sequence_gaps",
        column("device_id", Uuid()),
        column("seq"),
        column("noticed_at", UtcDateTime()),
    )
    with engine.begin() as conn:
        for seq, noticed_at in ((2, late), (3, early), (4, late), (7, late), (9, early)):
            conn.execute(
                numbers.insert().values(device_id=device_id, seq=seq, noticed_at=noticed_at)
            )
    engine.dispose()
    migrate.upgrade(db_url)
    assert _schema_diff(db_url) == []
    engine = create_engine(db_url)
    with Session(engine) as session:
        gaps = session.scalars(select(DeviceSequenceGap).order_by(DeviceSequenceGap.first_seq))
        assert [(g.first_seq, g.last_seq, g.noticed_at) for g in gaps] == [
            (2, 4, early),
            (7, 7, late),
            (9, 9, early),
        ]
    engine.dispose()
    migrate.downgrade(db_url, "0006")
    engine = create_engine(db_url)
    with engine.connect() as conn:
        seqs = conn.execute(text("SELECT seq FROM device_sequence_gaps ORDER BY seq")).scalars()
        assert list(seqs) == [2, 3, 4, 7, 9]
    engine.dispose()
    migrate.upgrade(db_url)
    assert _schema_diff(db_url) == []


def test_quarantine_reviews_are_copied_from_the_audit_log_and_dropped_back(
    db_url, rt, create_user_
):
    """0021 reads each rejected submission's first `dismiss_submission` or `resubmit_submission`
    audit entry into its review columns; going back drops the columns and keeps the audit log."""
    from server.devices.models import Device
    from server.submissions.models import ReviewStatus, Submission
    from server.users.models import User

    create_user_("collector")
    create_user_("reviewer")
    device_id = uuid.uuid4()
    with rt.db.unit_of_work() as session:
        ids = dict(session.execute(select(User.username, User.id)).tuples().all())
        session.add(Device(id=device_id, registered_by_id=ids["collector"], highest_seq=0))
    rt.db.dispose()
    migrate.downgrade(db_url, "0020")
    dismissed, corrected, replacement, twice, lost, waiting = (uuid.uuid4() for _ in range(6))
    submissions = table(
        "submissions",
        column("instance_id", Uuid()),
        column("batch_id", Uuid()),
        column("device_id", Uuid()),
        column("user_id"),
        column("form_id"),
        column("form_version"),
        column("hlc"),
        column("payload", JsonDocument),
        column("content_hash"),
        column("status"),
        column("result", JsonDocument),
        column("errors", JsonDocument),
        column("received_at", UtcDateTime()),
    )
    audit = table(
        "audit_log",
        column("at", UtcDateTime()),
        column("user_id"),
        column("action"),
        column("object_type"),
        column("object_id"),
        column("details", JsonDocument),
    )
    early, late = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
    engine = create_engine(db_url)
    with engine.begin() as conn:
        for instance_id in (dismissed, corrected, replacement, twice, lost, waiting):
            conn.execute(
                submissions.insert().values(
                    instance_id=instance_id,
                    batch_id=uuid.uuid4(),
                    device_id=device_id,
                    user_id=ids["collector"],
                    form_id="household_visit",
                    form_version=1,
                    hlc="0",
                    payload={},
                    content_hash="sha256:" + "0" * 64,
                    status="accepted" if instance_id == replacement else "rejected",
                    result={},
                    errors=[],
                    received_at=early,
                )
            )
        for at, action, instance_id, details in (
            (early, "dismiss_submission", dismissed, {"reason": "旧表单"}),
            (early, "resubmit_submission", corrected, {"corrected_as": str(replacement)}),
            (early, "dismiss_submission", twice, {"reason": "first"}),
            (late, "dismiss_submission", twice, {"reason": "second"}),
            (late, "resubmit_submission", lost, {"corrected_as": str(uuid.uuid4())}),
            (late, "reveal_sensitive", waiting, {"fields": ["id_number"]}),
        ):
            conn.execute(
                audit.insert().values(
                    at=at,
                    user_id=ids["reviewer"],
                    action=action,
                    object_type="submission",
                    object_id=str(instance_id),
                    details=details,
                )
            )
    engine.dispose()
    migrate.upgrade(db_url)
    assert _schema_diff(db_url) == []
    engine = create_engine(db_url)
    with Session(engine) as session:
        reviews = {
            sub.instance_id: (
                sub.review_status,
                sub.reviewed_by_id,
                sub.reviewed_at,
                sub.review_reason,
                sub.corrected_by_instance_id,
            )
            for sub in session.scalars(select(Submission))
        }
    engine.dispose()
    reviewer = ids["reviewer"]
    assert reviews == {
        dismissed: (ReviewStatus.DISMISSED, reviewer, early, "旧表单", None),
        corrected: (ReviewStatus.CORRECTED, reviewer, early, None, replacement),
        replacement: (None, None, None, None, None),
        twice: (ReviewStatus.DISMISSED, reviewer, early, "first", None),
        lost: (ReviewStatus.CORRECTED, reviewer, late, None, None),
        waiting: (None, None, None, None, None),
    }
    engine = create_engine(db_url)
    with pytest.raises(IntegrityError), engine.begin() as conn:  # the CHECK of the codes
        conn.execute(text("UPDATE submissions SET review_status = 'maybe'"))
    engine.dispose()
    migrate.downgrade(db_url, "0019")
    engine = create_engine(db_url)
    names = {c["name"] for c in inspect(engine).get_columns("submissions")}
    assert "review_status" not in names and "corrected_by_instance_id" not in names
    with engine.connect() as conn:
        kept = conn.execute(
            text("SELECT COUNT(*) FROM audit_log WHERE object_type = 'submission'")
        ).scalar()
    engine.dispose()
    assert kept == 6
    migrate.upgrade(db_url)
    assert _schema_diff(db_url) == []
