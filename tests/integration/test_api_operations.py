"""The operations the reference has that Backhaul lacked: device certificates (from the registry the operator
loads with `backhaul registry load`), geolocation payload formats, operators. Each on the running API, with
its rights and its scope (another tenant: 404; a profile without the right: 403). Consumption is
`test_api_consumption.py`."""
from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from oss.profiles import PROFILES
from oss.registry import load_registry, parse_registry, stable_id
from tests.api_support import Tenant, api, check, make_device_type, make_tenant, running_api  # noqa: F401
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

PROFILE = {p.name: p.id for p in PROFILES.values()}
EXAMPLE = ROOT / "deploy" / "registry.example.json"


async def api_user(t: Tenant, profile: str):
    made = check(await t.client.post("/api-users/", {"groupId": t.group, "name": profile,
                                                     "profileIds": [PROFILE[profile]]}), 201)
    return t.client.as_user(made["id"], made["accessToken"])


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "program.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


async def test_the_operator_loads_the_registry_with_the_cli(isolated, tmp_path: Path):
    env = isolated.subprocess_env()
    done = cli("registry", "load", str(EXAMPLE), env=env)
    assert done.returncode == 0, done.stderr
    assert "1 modemCertificates, 1 productCertificates, 1 devices, 1 geolocPayloads" in done.stdout
    again = json.loads(EXAMPLE.read_text())
    again["productCertificates"][0]["name"] = "Example tracker, renamed"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(again))
    assert cli("registry", "load", str(edited), env=env).returncode == 0

    broken = json.loads(EXAMPLE.read_text())
    broken["productCertificates"][0].update(modemCertificateKey="M_NOWHERE", name="should not be stored")
    broken["devices"].append({"id": "A1B2C4", "pac": "short", "productCertificateKey": "P_0053_9D1F_01"})
    broken["geolocPayload"] = []
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    refused = cli("registry", "load", str(tmp_path / "broken.json"), env=env)
    assert refused.returncode == 1
    assert "devices[1].pac: must be 16 hexadecimal characters" in refused.stderr
    assert "geolocPayload: unknown section" in refused.stderr
    broken["devices"].pop()
    del broken["geolocPayload"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    refused = cli("registry", "load", str(tmp_path / "broken.json"), env=env)
    assert refused.returncode == 1
    assert "productCertificates[0].modemCertificateKey: modem certificate 'M_NOWHERE' is neither in this file " \
           "nor in the registry" in refused.stderr
    missing = cli("registry", "load", str(tmp_path / "nothing.json"), env=env)
    assert missing.returncode == 1 and "cannot read" in missing.stderr

    async with running_api() as (env_api, _root):
        rows = await env_api.pool.fetch("SELECT kind, key, name FROM certificates ORDER BY kind")
        assert [tuple(r) for r in rows] == [("modem", "M_0020_7F31_01", "Example modem"),
                                            ("product", "P_0053_9D1F_01", "Example tracker, renamed")], \
            "loaded again: updated, not duplicated; a refused file changed nothing"
        tenant = await make_tenant(env_api, "Example owner")
        dt = await make_device_type(tenant.client, tenant)
        check(await tenant.client.post("/devices/", {"id": "A1B2C3", "name": "tracker", "pac": "0123456789abcdef",
                                                     "deviceTypeId": dt}), 201)
        product = check(await tenant.client.get("/devices/A1B2C3/certificate/product",
                                                params={"fields": "manufacturer(name)"}), 200)
        assert product == {
            "id": stable_id("product", "P_0053_9D1F_01"), "name": "Example tracker, renamed", "status": 1,
            "key": "P_0053_9D1F_01", "manufacturer": {"id": stable_id("manufacturer", "Example Devices"),
                                                      "name": "Example Devices"},
            "version": "2.1", "modes": [0, 1], "inputSensitivity": -126, "devKit": False,
            "radioConfigurations": [{"id": 0, "uplinkClass": 0, "maxEirp": 16.0}]}, \
            "the device's certificate is the one declared for its id and PAC (any case)"
        modem = check(await tenant.client.get("/devices/A1B2C3/certificate/modem"), 200)
        assert modem["key"] == "M_0020_7F31_01" and modem["repeaterFunction"] is False
        assert modem["manufacturer"] == {"id": stable_id("manufacturer", "Example Modems")}, "name with fields= only"
        assert modem["radioConfigurations"] == [{"id": 0, "outputPower": 14.0, "balancedLinkBudget": True}]


def registry_of(tag: str, group: str | None = None) -> dict[str, Any]:
    """A modem, two products (one without a modem), two declared devices: keys and ids unique to `tag`."""
    return {
        "modemCertificates": [{"key": f"M_{tag}", "name": f"modem {tag}", "modes": [1],
                               "manufacturer": {"id": "0123456789abcdef01234567", "name": "Modem maker"}}],
        "productCertificates": [
            {"key": f"P_{tag}", "name": f"product {tag}", "modemCertificateKey": f"M_{tag}", "modes": [0, 1],
             "radioConfigurations": [{"id": 0, "uplinkClass": 1, "maxEirp": 14.5},
                                     {"id": 4, "uplinkClass": 0, "maxEirp": 22.0}],
             "externalId": "X1", "certificateCode": 7, "certificateIndex": 2, "qualificationTime": 1_700_000_000_000,
             "reportNumber": "R-7", "encryptionPayload": True, "devKit": True},
            {"key": f"P_{tag}_ALONE", "name": f"uplink-only product {tag}", "modes": [0]}],
        "devices": [{"id": f"{tag}01", "pac": "00000000000000AA", "productCertificateKey": f"P_{tag}"},
                    {"id": f"{tag}02", "pac": "00000000000000BB", "productCertificateKey": f"P_{tag}_ALONE"}],
    }


async def test_device_certificates_follow_the_registry_and_the_devices_scope(api):
    tag = secrets.token_hex(2).upper()
    registry = parse_registry(registry_of(tag))
    async with api.pool.acquire() as conn:
        await load_registry(conn, registry)
    owner, other = await make_tenant(api, f"Certified {tag}"), await make_tenant(api, f"Stranger {tag}")
    c = owner.client
    dt = await make_device_type(c, owner)
    devices = {  # device id -> what it was created with
        f"{tag}01": {"pac": "00000000000000aa"},  # declared: its certificate by id and PAC
        f"{tag}03": {"pac": "1" * 16, "productCertificate": {"key": f"P_{tag}"}},  # by key
        f"{tag}04": {"pac": "00000000000000BB", "productCertificate": {"key": f"P_{tag}_ALONE"}},  # no modem
        f"{tag}05": {"pac": "2" * 16, "productCertificate": {"key": "P_NOT_IN_THE_REGISTRY"}},
        f"{tag}06": {"pac": "3" * 16},  # nothing declared
    }
    for ident, extra in devices.items():
        check(await c.post("/devices/", {"id": ident, "name": ident, "deviceTypeId": dt, **extra}), 201)
    product_id, modem_id = registry.products[0]["id"], registry.modems[0]["id"]
    for ident in (f"{tag}01", f"{tag}03"):
        product = check(await c.get(f"/devices/{ident}/certificate/product"), 200)
        assert (product["id"], product["key"], product["devKit"], product["modes"]) == (product_id, f"P_{tag}", True,
                                                                                         [0, 1])
        assert product["radioConfigurations"][1] == {"id": 4, "uplinkClass": 0, "maxEirp": 22.0}
        assert "manufacturer" not in product, "none declared"
        modem = check(await c.get(f"/devices/{ident}/certificate/modem", params={"fields": "manufacturer(name)"}),
                      200)
        assert modem == {"id": modem_id, "name": f"modem {tag}", "status": 1, "key": f"M_{tag}", "modes": [1],
                         "manufacturer": {"id": "0123456789abcdef01234567", "name": "Modem maker"},
                         "radioConfigurations": []}
    assert check(await c.get(f"/devices/{tag}04/certificate/product"), 200)["key"] == f"P_{tag}_ALONE"
    for path, why in ((f"/devices/{tag}04/certificate/modem", "names no modem certificate"),
                      (f"/devices/{tag}05/certificate/product", "no product certificate in the registry"),
                      (f"/devices/{tag}06/certificate/product", "no product certificate in the registry"),
                      (f"/devices/{tag}06/certificate/modem", "no product certificate in the registry")):
        missing = await c.get(path)
        assert missing.status == 404 and why in missing.body["message"], (path, missing.body)
    bad = await c.get(f"/devices/{tag}01/certificate/product", params={"fields": "group(name)"})
    assert bad.status == 400 and bad.body["errors"][0]["field"] == "fields"

    # Declared but not registered yet: its PAC proves the caller holds it.
    declared = f"{tag}02"
    answer = check(await c.get(f"/devices/{declared}/product-certificate", params={"pac": "00000000000000bb"}), 200)
    assert answer == {"id": registry.products[1]["id"], "name": f"uplink-only product {tag}", "status": 1,
                      "key": f"P_{tag}_ALONE", "modes": [], "standards": [], "standardCfgs": []}
    full = check(await c.get(f"/devices/{tag}01/product-certificate", params={"pac": "00000000000000AA"}), 200)
    assert full["modes"] == [1], "uplink and downlink: DOWNLINK in this answer's terms"
    assert full["standards"] == [{"id": 0}, {"id": 4}] and len(full["standardCfgs"]) == 2
    assert (full["externalId"], full["certificateCode"], full["certificateIndex"], full["qualificationTime"],
            full["reportNumber"], full["encryptionPayload"], full["devKit"]) == ("X1", 7, 2, 1_700_000_000_000,
                                                                                "R-7", True, True)
    for params, status, field in (({"pac": "00000000000000CC"}, 404, None), ({}, 400, "pac"),
                                  ({"pac": "00AA"}, 400, "pac"), ({"pac": "G" * 16}, 400, "pac")):
        r = await c.get(f"/devices/{declared}/product-certificate", params=params)
        assert r.status == status, (params, r.status, r.body)
        if field:
            assert r.body["errors"][0] == {"type": "query", "field": "pac", "message": r.body["errors"][0]["message"]}
    assert (await c.get(f"/devices/{tag}99/product-certificate", params={"pac": "0" * 16})).status == 404

    # Another tenant: the owner's registered devices are not found, with or without the right PAC.
    stranger = other.client
    for path, params in ((f"/devices/{tag}01/certificate/product", None), (f"/devices/{tag}01/certificate/modem", None),
                         (f"/devices/{tag}01/product-certificate", {"pac": "00000000000000AA"})):
        refused = await stranger.get(path, params=params)
        assert refused.status == 404 and set(refused.body) == {"message"}, (path, refused.status, refused.body)
        assert product_id not in json.dumps(refused.body)
    # Once the stranger may see it (nobody registered it), the declared device answers it too.
    assert check(await stranger.get(f"/devices/{declared}/product-certificate",
                                    params={"pac": "00000000000000BB"}), 200)["key"] == f"P_{tag}_ALONE"

    users_only = await api_user(owner, "USER MANAGER [W]")
    for path in (f"/devices/{tag}01/certificate/product", f"/devices/{tag}01/certificate/modem",
                 f"/devices/{declared}/product-certificate?pac=00000000000000BB"):
        assert (await users_only.get(path)).status == 403, path
    reader = await api_user(owner, "DEVICE MANAGER [R]")
    assert check(await reader.get(f"/devices/{tag}01/certificate/product"), 200)["id"] == product_id


async def test_geolocation_payload_formats_are_offered_down_the_group_tree(api):
    a, b = await make_tenant(api, "Geoloc A"), await make_tenant(api, "Geoloc B")
    sub = check(await a.client.post("/groups/", {"name": "Geoloc A sub", "parentId": a.group}), 201)["id"]
    tag = secrets.token_hex(3)
    formats = {"everyone": None, "a": a.group, "a-sub": sub, "b": b.group}
    registry = parse_registry({"geolocPayloads": [{"name": f"{tag} {name}", "groupId": group}
                                                  for name, group in formats.items()]})
    async with api.pool.acquire() as conn:
        await load_registry(conn, registry)
    ids = {name.split(" ", 1)[1]: ident for ident, name, _ in registry.geoloc}

    async def offered(client, group: str) -> list[str]:
        """The names of this test's formats the group is offered, in the order listed, one page at a time."""
        names, url, params = [], f"/groups/{group}/geoloc-payloads", {"limit": "1"}
        while url:
            page = check(await client.get(url, params=params), 200)
            params = None
            names += [p["name"].split(" ", 1)[1] for p in page["data"] if p["name"].startswith(tag)]
            url = page["paging"].get("next")
        return names

    assert await offered(a.client, a.group) == ["a", "everyone"], "its own and everyone's, by name"
    assert await offered(a.client, sub) == ["a", "a-sub", "everyone"], "a sub-group also gets its parent's"
    assert await offered(b.client, b.group) == ["b", "everyone"]
    listed = check(await a.client.get(f"/groups/{a.group}/geoloc-payloads"), 200)["data"]
    assert {"id": ids["a"], "name": f"{tag} a"} in listed and set(listed[0]) == {"id", "name"}
    stranger = await a.client.get(f"/groups/{b.group}/geoloc-payloads")
    assert stranger.status == 404 and ids["b"] not in json.dumps(stranger.body)
    viewer = await api_user(a, "USER MANAGER [R]")
    assert await offered(viewer, a.group) == ["a", "everyone"], "every profile reads its groups"
    assert (await a.client.get("/groups/not-an-id/geoloc-payloads")).status == 400
    refused = parse_registry({"geolocPayloads": [{"name": "nowhere", "groupId": "f" * 24}]})
    async with api.pool.acquire() as conn:
        with pytest.raises(ValueError, match=r"geolocPayloads\[0\].groupId: group f{24} does not exist"):
            await load_registry(conn, refused)


async def test_operators_are_groups_of_type_so_read_and_updated_through_them(api):
    t, other = await make_tenant(api, "Operator holder"), await make_tenant(api, "Operator stranger")
    c = t.client
    # Only an operator (the root, type 0) makes operator groups, here in the two customers' subtrees.
    operator = check(await api.root.post("/groups/", {"name": "Network operator", "parentId": t.group, "type": 0}),
                     201)["id"]
    plain = check(await c.post("/groups/", {"name": "Just a group", "parentId": t.group}), 201)["id"]
    theirs = check(await api.root.post("/groups/", {"name": "Their operator", "parentId": other.group,
                                                     "type": 0}), 201)["id"]
    listed = check(await c.get("/operators/"), 200)["data"]
    assert [o["id"] for o in listed] == [operator], "the operators of the caller's groups only"
    fresh = {"id": operator, "autoCloseCampaign": False, "warrantyMode": 0, "networkType": 0}
    assert check(await c.get(f"/operators/{operator}"), 200) == fresh, "never set: left out, but for the defaults"
    assert (await c.get(f"/operators/{plain}")).status == 404, "a group of another type is no operator"
    assert check(await c.get(f"/operators/{operator}", params={"authorizations": "true"}), 200)["actions"] == \
        ["read", "update"]
    assert check(await c.get(f"/operators/{operator}", params={
        "fields": "telecommunicationStandard(name),upgradeStatus(runtime(name))"}), 200) == fresh

    settings = {"transmitterPower": 500, "minDb": -142, "maxDb": -60, "alertTime": 3600,
                "requestTrackerBaseUrl": "https://tickets.example.com/",
                "telecommunicationStandard": {"id": "etsi", "name": "ETSI"}, "antenna": {"model": "CXL 900-3LW"},
                "somethingNew": "ignored, as the reference does"}
    check(await c.put(f"/operators/{operator}", settings), 204)
    shown = check(await c.get(f"/operators/{operator}"), 200)
    assert shown == {**fresh, **{k: v for k, v in settings.items() if k != "somethingNew"}}
    check(await c.put(f"/operators/{operator}", {"alertTime": 600, "antenna": None, "requestTrackerBaseUrl": None}), 204)
    partly = check(await c.get(f"/operators/{operator}"), 200)
    assert partly["alertTime"] == 600 and partly["transmitterPower"] == 500, "what is left out is kept"
    assert "antenna" not in partly and "requestTrackerBaseUrl" not in partly, "null unsets"

    for body, field in (({"minDb": -50}, "minDb"), ({"maxDb": -150}, "maxDb"), ({"transmitterPower": 1001},
                        "transmitterPower"), ({"alertTime": 10}, "alertTime"), ({"minDb": "low"}, "minDb"),
                        ({"requestTrackerBaseUrl": "ftp://x"}, "requestTrackerBaseUrl"),
                        ({"telecommunicationStandard": {"name": "no id"}}, "telecommunicationStandard.id")):
        bad = await c.put(f"/operators/{operator}", body)
        assert bad.status == 400 and bad.body["errors"][0]["field"] == field, (body, bad.status, bad.body)
    assert check(await c.get(f"/operators/{operator}"), 200) == partly, "a refused update changes nothing"

    for method, body in (("GET", None), ("PUT", {"maxDb": -10})):
        refused = await other.client.call(method, f"/operators/{operator}", body)
        assert refused.status == 404 and set(refused.body) == {"message"}, (method, refused.status)
    assert [o["id"] for o in check(await other.client.get("/operators/"), 200)["data"]] == [theirs]
    devices_only = await api_user(t, "DEVICE MANAGER [W]")
    assert check(await devices_only.get(f"/operators/{operator}", params={"authorizations": "true"}),
                 200)["actions"] == ["read"]
    assert (await devices_only.put(f"/operators/{operator}", {"maxDb": -10})).status == 403, "needs groups:write"
    assert check(await c.get(f"/operators/{operator}"), 200) == partly


async def test_backhaul_up_seeds_the_contract_its_devices_hold(isolated):
    """How contracts come to exist without orders: `backhaul up`'s seeding makes one, read back through the API."""
    from backhaul import db
    from program.demo.seed import DEMO_CONTRACT, seed_network
    from simulator.network import build_network

    async with running_api() as (env, root):
        network = build_network(1, 3, seed=5)
        for _ in range(2):  # `up` run again updates, never duplicates
            conn = await db.connect()
            try:
                ids = await seed_network(conn, network, name="demo", parent_group=root, contract=DEMO_CONTRACT)
            finally:
                await conn.close()
        [contract] = check(await env.root.get("/contract-infos/"), 200)["data"]
        assert contract["id"] == ids["contract"] and contract["name"] == "demo contract"
        assert contract["group"] == {"id": ids["group"]} and contract["order"]["name"] == "demo order"
        assert (contract["bidir"], contract["maxTokens"], contract["tokenDuration"], contract["tokensInUse"],
                contract["maxUplinkFrames"], contract["maxDownlinkFrames"]) == (True, 0, 0, 3, 140, 4)
        held = check(await env.root.get(f"/contract-infos/{contract['id']}/devices"), 200)["data"]
        assert sorted(d["id"] for d in held) == sorted(d.id for d in network.devices)
        assert {d["token"]["state"] for d in held} == {0}, "each device holds a token of it"
        assert check(await env.root.get(f"/device-types/{ids['deviceType']}"), 200)["contract"] == {"id": contract["id"]}
        assert [o["id"] for o in check(await env.root.get("/operators/"), 200)["data"]] == [root], \
            "the root group (type 0, SO) is the network's operator"
