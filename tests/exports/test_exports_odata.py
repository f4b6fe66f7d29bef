"""The BI feed as an OData v4 subset: the service document, `$metadata` (CSDL), entity sets with
`$top`/`$skip`/`$select`/`$filter` and `@odata.nextLink` paging, scoped and masked like every
export; malformed options are a 422."""

from __future__ import annotations

from urllib.parse import quote

from defusedxml import ElementTree  # type: ignore[import-untyped]

from server.households.models import Household, Member
from tests.conftest import TOWNSHIP_A, VILLAGE_A1, VILLAGE_B1, bearer
from tests.exports.test_exports_api import _register, world  # noqa: F401 (the fixture)
from tests.exports.world import push_register

ROOT = "/api/v1/exports/odata"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


def _get(client, token, url):
    return client.get(url.replace("http://localhost", ""), headers=bearer(token))


def test_service_document_and_metadata_describe_the_datasets(world, client):  # noqa: F811
    service = _get(client, world["sup_a"], ROOT)
    assert service.status_code == 200
    assert service.headers["OData-Version"] == "4.0"
    document = service.get_json()
    assert document["@odata.context"].endswith("/odata/$metadata")
    names = {s["name"] for s in document["value"]}
    assert {"households", "members", "conflicts"} <= names
    assert "monitoring_summary" not in names  # needs filters: not an entity set
    metadata = _get(client, world["sup_a"], f"{ROOT}/$metadata")
    assert metadata.status_code == 200
    assert metadata.mimetype == "application/xml"
    tree = ElementTree.fromstring(metadata.get_data())
    types = {t.get("Name"): t for t in tree.iter(f"{EDM}EntityType")}
    assert set(types) == names
    members = types["members"]
    assert members.find(f"{EDM}Key/{EDM}PropertyRef").get("Name") == "id"
    props = {p.get("Name"): p.get("Type") for p in members.iter(f"{EDM}Property")}
    assert props["id"] == "Edm.String"
    assert props["rev"] == "Edm.Int64"
    assert props["updated_at"] == "Edm.DateTimeOffset"
    sets = {s.get("Name"): s.get("EntityType") for s in tree.iter(f"{EDM}EntitySet")}
    assert sets["members"] == "fieldsync.members"


def test_entity_set_pages_by_next_link_with_top_and_select(world, client, rt):  # noqa: F811
    url = f"{ROOT}/members?$top=2&$select=id,household_id"
    seen: list[str] = []
    pages = 0
    while url:
        response = _get(client, world["admin"], url)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        assert page["@odata.context"].endswith("/$metadata#members")
        assert all(set(entity) == {"id", "household_id"} for entity in page["value"])
        assert len(page["value"]) <= 2
        seen += [entity["id"] for entity in page["value"]]
        url = page.get("@odata.nextLink", "")
        pages += 1
    members = _register(rt, Member)
    assert sorted(seen) == sorted(str(m.id) for m in members)
    assert len(seen) == len(set(seen))
    assert pages >= 3
    everything = _get(client, world["admin"], f"{ROOT}/members?$top=1000").get_json()["value"]
    skipped = _get(client, world["admin"], f"{ROOT}/members?$skip=2").get_json()["value"]
    assert [e["id"] for e in skipped] == [e["id"] for e in everything][2:]


def test_filter_takes_the_dataset_filters_and_scope_still_applies(world, client, rt):  # noqa: F811
    push_register(world["tablet"], VILLAGE_A1)
    households = _register(rt, Household)
    in_a1 = sorted(str(h.id) for h in households if h.village_code == VILLAGE_A1)
    assert in_a1
    where = quote(f"region eq '{VILLAGE_A1}'")
    page = _get(client, world["sup_a"], f"{ROOT}/households?$filter={where}").get_json()
    assert sorted(e["id"] for e in page["value"]) == in_a1
    # Sensitive columns stay masked.
    members = _get(client, world["sup_a"], f"{ROOT}/members").get_json()["value"]
    assert all("*" in (m["id_number"] or "*") for m in members)
    # Changed since a time in the future: nothing.
    later = quote(f"region eq '{TOWNSHIP_A}' and changed_since ge 2999-01-01T00:00:00Z")
    assert _get(client, world["sup_a"], f"{ROOT}/households?$filter={later}").get_json() == {
        "@odata.context": "http://localhost/api/v1/exports/odata/$metadata#households",
        "value": [],
    }
    # Another township's region is out of scope.
    other = quote(f"region eq '{VILLAGE_B1}'")
    assert _get(client, world["sup_a"], f"{ROOT}/households?$filter={other}").status_code == 403


def test_malformed_options_are_a_422(world, client):  # noqa: F811
    for query in (
        "$filter=" + quote("region lt '450000000000'"),
        "$filter=" + quote("nosuch eq 'x'"),
        "$filter=" + quote("region eq 'x'"),
        "$filter=" + quote("changed_since eq 2026-01-01T00:00:00Z"),
        "$filter=" + quote("region eq '450000000000' and region eq '450000000000'"),
        "$select=nosuch",
        "$top=-1",
        "$top=99999",
        "$orderby=id",
    ):
        response = _get(client, world["admin"], f"{ROOT}/households?{query}")
        assert response.status_code == 422, (query, response.get_json())
    assert _get(client, world["admin"], f"{ROOT}/nosuch").status_code == 404
    assert _get(client, world["admin"], f"{ROOT}/monitoring_summary").status_code == 404
