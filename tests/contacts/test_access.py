"""What a contacts key may see of another workspace, and read versus write keys.

Tenant scoping and permissions of every route (this feature's included) are proven by
tests/reliability/test_isolation.py over the one route table, tests/reliability/routes.py.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from audience.api_keys.schemas import Permission
from tests.conftest import Tenant
from tests.contacts.conftest import KeyFor
from tests.contacts.helpers import get_contact, import_ok, memberships, set_status, snapshot
from tests.reliability.routes import BY_ID, SEED_EMAIL, SEED_LIST, seed

MARKER = "ACME-OWN"


def test_read_and_write_permissions_are_distinct(
    client: TestClient, tenant: Tenant, key_for: KeyFor
) -> None:
    seed(client, tenant.id, tenant.headers, MARKER)
    writer = key_for(Permission.CONTACTS_WRITE).headers
    reader = key_for(Permission.CONTACTS_READ).headers
    assert BY_ID["contacts.getByEmail"].call(client, writer, tenant.id).status_code == 403
    assert BY_ID["contacts.getByEmail"].call(client, reader, tenant.id).status_code == 200
    assert BY_ID["contacts.upsert"].call(client, reader, tenant.id).status_code == 403
    assert BY_ID["contacts.delete"].call(client, reader, tenant.id).status_code == 403


def test_another_workspace_sees_none_of_acmes_contacts_in_its_own_scope(
    client: TestClient, engine: Engine, tenant: Tenant, other_tenant: Tenant
) -> None:
    """Within its own workspace, globex finds nothing of acme's, and changes nothing of it."""
    seed(client, tenant.id, tenant.headers, MARKER)
    acme_before = snapshot(engine)
    jane = get_contact(client, tenant, SEED_EMAIL)
    globex = other_tenant
    for name in ("contacts.getByEmail", "contacts.getByExternalID"):
        response = BY_ID[name].call(client, globex.headers, globex.id)
        assert response.status_code == 404, response.text
        assert set(response.json()) == {"error"}
    listed = client.get(
        "/api/contacts.list", headers=globex.headers, params={"workspace_id": globex.id}
    )
    assert listed.json() == {"contacts": [], "next_cursor": None}
    count = BY_ID["contacts.count"].call(client, globex.headers, globex.id)
    assert count.json() == {"total_contacts": 0}
    assert BY_ID["contacts.delete"].call(client, globex.headers, globex.id).status_code == 404
    assert (
        BY_ID["contactLists.updateStatus"].call(client, globex.headers, globex.id).status_code
        == 404
    )
    assert snapshot(engine) == acme_before

    # The same email in globex is a contact of globex's own, created there.
    seed(client, globex.id, globex.headers, "GLOBEX-OWN")
    set_status(client, globex, SEED_EMAIL, SEED_LIST, "bounced")
    assert memberships(client, globex, SEED_EMAIL) == {SEED_LIST: "bounced"}
    assert memberships(client, tenant, SEED_EMAIL) == {SEED_LIST: "active"}
    assert get_contact(client, tenant, SEED_EMAIL) == jane
    operations = import_ok(client, globex, [{"email": SEED_EMAIL, "first_name": "Other"}])
    assert operations[0]["action"] == "update"
    assert get_contact(client, tenant, SEED_EMAIL) == jane
