"""The home page in a real browser: its counts match the API's lists, the hourly chart adds up to the
messages of the last 24 h, failing callbacks and devices in error are the group's, and group A's home never
counts group B's data (on the page and in oss.storage.dashboard itself)."""
from __future__ import annotations

import uuid

from oss.clock import now_ms
from oss.profiles import ADMIN
from oss.storage import dashboard
from tests.api_support import Tenant, check, make_device_type
from tests.console.harness import Site

DAY_MS = 24 * dashboard.HOUR_MS


def _fill(site: Site, tenant: Tenant, prefix: str, devices: int, recent: int) -> list[str]:
    """`devices` devices; `recent` messages in the last 24 h on the first and one older; one undelivered
    callback in the last hour; the last device in communication KO."""
    async def fill() -> list[str]:
        device_type = await make_device_type(tenant.client, tenant)
        ids = [f"{prefix}{i:02X}" for i in range(devices)]
        for ident in ids:
            check(await tenant.client.post("/devices/", {"id": ident, "name": f"{prefix} {ident}", "pac": "0" * 16,
                                                          "deviceTypeId": device_type}), 201)
        now, pool = now_ms(), site.env.pool
        for i, at in enumerate([now - (i * 3 + 1) * 60_000 * 17 for i in range(recent)] + [now - DAY_MS - 60_000]):
            await pool.execute(
                "INSERT INTO messages(id, device_id, device_type_id, time, seq_number, data, registration_id) "
                "VALUES ($1, $2, $3, $4, $5, 'ab', (SELECT registration_id FROM devices WHERE id = $2))",
                uuid.uuid4().hex, ids[0], device_type, at, i)
        await pool.execute(
            "INSERT INTO undelivered_callbacks(delivery_id, device_id, device_type_id, group_id, callback_id, time, "
            "status, message, callback, delivery, registration_id) VALUES ($1, $2, $3, $4, $5, $6, 500, 'boom', "
            "'{}', '{}', (SELECT registration_id FROM devices WHERE id = $2))",
            uuid.uuid4().hex, ids[0], device_type, tenant.group, f"cb-{prefix}", now - 60_000)
        await pool.execute(
            "INSERT INTO device_status(device_id, registration_id, com_state, last_com) VALUES "
            "($1, (SELECT registration_id FROM devices WHERE id = $1), 3, $2)", ids[-1], now - DAY_MS)
        return ids

    return site.run(fill())


def test_the_home_page_counts_match_the_apis_lists_and_never_another_groups(site, browser):
    a, b = site.tenant("Home A"), site.tenant("Home B")
    a_devices = _fill(site, a, "AA", devices=3, recent=5)
    _fill(site, b, "BB", devices=4, recent=7)
    person = site.person([(a.group, ADMIN)])
    browser.login(person)
    browser.open("/console/")
    browser.check_plain()
    browser.shot("home")

    async def from_api() -> dict[str, int]:
        c, since = a.client, now_ms() - DAY_MS
        devices = check(await c.get("/devices/"), 200)["data"]
        messages = 0
        for d in devices:
            messages += len(check(await c.get(f"/devices/{d['id']}/messages", params={"since": str(since)}), 200)["data"])
        return {"devices": len(devices), "device_types": len(check(await c.get("/device-types/"), 200)["data"]),
                "users": len(check(await c.get("/users/"), 200)["data"]), "messages": messages,
                "ko": sorted(d["id"] for d in devices if d.get("comState") == 3)}

    expected = site.run(from_api())
    assert expected["devices"] == 3 and expected["messages"] == 5 and expected["ko"] == [a_devices[-1]]
    for key in ("devices", "device_types", "users", "messages"):
        assert browser.find(f"#count-{key} .value").text == str(expected[key]), key
    bars = [int(b.get_attribute("data-count")) for b in browser.finds("#messages-chart rect.bar")]
    assert len(bars) == 24 and sum(bars) == expected["messages"]
    failing = browser.text("#failing")
    assert "cb-AA" in failing and "cb-BB" not in failing
    assert [li.text.split()[0] for li in browser.finds("#in-error li")] == expected["ko"]
    assert "BB" not in browser.text("main")


def test_the_dashboard_reads_keep_to_the_groups_subtree(site):
    a, b = site.tenant("Dash A"), site.tenant("Dash B")
    child = check(site.run(site.env.root.post("/groups/", {"name": "Dash A child", "parentId": a.group})), 201)["id"]
    contract = check(site.run(site.env.root.post("/contract-infos/", {"name": "Dash A child contract", "groupId": child,
                                                                     "maxTokens": 0})), 201)["id"]
    child_tenant = Tenant(child, contract, a.client)
    _fill(site, child_tenant, "DA", devices=2, recent=3)
    _fill(site, b, "DB", devices=5, recent=4)

    async def read(root: str) -> tuple:
        now, pool = now_ms(), site.env.pool
        return (dict(await dashboard.counts(pool, root, now - DAY_MS)),
                sum((await dashboard.messages_per_hour(pool, root, now - DAY_MS)).values()),
                [r["callback_id"] for r in await dashboard.failing_callbacks(pool, root, now - dashboard.HOUR_MS, 10)],
                [r["id"] for r in await dashboard.devices_in_error(pool, root, now, 10)])

    counts_a, hourly_a, failing_a, ko_a = site.run(read(a.group))
    assert counts_a["devices"] == 2 and counts_a["messages"] == 3 and hourly_a == 3  # the child's, seen from A
    assert failing_a == ["cb-DA"] and ko_a == ["DA01"]
    counts_b, hourly_b, failing_b, ko_b = site.run(read(b.group))
    assert counts_b["devices"] == 5 and counts_b["messages"] == 4 and hourly_b == 4
    assert failing_b == ["cb-DB"] and ko_b == ["DB04"]
    counts_child = site.run(read(child))[0]
    assert counts_child["devices"] == 2 and counts_child["users"] == 0  # A's API user holds no role: users are people
