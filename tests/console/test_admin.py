"""The admin pages in a real browser: users (filters, roles, links), groups, API access (credentials shown
once), contracts, the error log (tenant isolation), and what each profile may see and do (the API's rights,
not only hidden buttons)."""
from __future__ import annotations

import base64
import uuid

import aiohttp

from console.sessions import new_token, token_hash
from oss.clock import now_ms
from oss.profiles import ADMIN, PROFILES
from oss.storage import console_sessions
from tests.api_support import check, make_device_type
from tests.console.harness import Browser

CUSTOMER_R = next(p.id for p in PROFILES.values() if p.name == "CUSTOMER [R]")
DEVICE_MANAGER_R = next(p.id for p in PROFILES.values() if p.name == "DEVICE MANAGER [R]")
USER_MANAGER_W = next(p.id for p in PROFILES.values() if p.name == "USER MANAGER [W]")


def rows(browser: Browser, table: str) -> list[str]:
    return [str(r.get_attribute("data-id")) for r in browser.finds(f"#{table} tbody tr[data-id]")]


def test_the_users_list_filters_by_text_group_and_profile_like_the_api(site, browser):
    tenant = site.tenant("Users Co")
    sub = check(site.run(site.env.root.post("/groups/", {"name": "Users Co east", "parentId": tenant.group})), 201)["id"]
    admin = site.person([(tenant.group, ADMIN)], first="Grace", last="Hopper")
    viewer = site.person([(sub, CUSTOMER_R)], first="Alan", last="Turing")
    manager = site.person([(tenant.group, USER_MANAGER_W)], first="Edsger", last="Dijkstra")
    browser.login(admin)
    browser.open("/console/users")
    assert set(rows(browser, "users")) == {admin.id, viewer.id, manager.id}
    browser.check_plain()
    browser.shot("users")
    browser.find("#filter-text").send_keys("turing")
    browser.submit("#apply-filters")
    assert rows(browser, "users") == [viewer.id]
    browser.open(f"/console/users?groupId={sub}")
    assert rows(browser, "users") == [viewer.id]
    browser.open(f"/console/users?profileId={USER_MANAGER_W}")
    assert rows(browser, "users") == [manager.id]
    browser.open("/console/users?sort=-name")
    api_order = [u["id"] for u in check(site.run(tenant.client.get("/users/", params={"sort": "-name"})), 200)["data"]]
    assert rows(browser, "users") == api_order
    # Another tenant's users never show.
    other = site.tenant("Users Other")
    stranger = site.person([(other.group, ADMIN)])
    browser.open("/console/users")
    assert stranger.id not in rows(browser, "users")


def test_a_role_added_on_the_user_page_shows_in_the_api_and_can_be_removed(site, browser):
    tenant = site.tenant("Roles Co")
    sub = check(site.run(site.env.root.post("/groups/", {"name": "Roles Co lab", "parentId": tenant.group})), 201)["id"]
    admin = site.person([(tenant.group, ADMIN)])
    target = site.person([(tenant.group, CUSTOMER_R)], first="Barbara", last="Liskov")
    browser.login(admin)
    browser.open(f"/console/users/{target.id}")
    browser.check_plain()
    browser.shot("user")
    browser.find(f"#role-group option[value='{sub}']").click()
    browser.find(f"#role-profile option[value='{DEVICE_MANAGER_R}']").click()
    browser.submit("#add-role-button")
    assert "role added" in browser.text("#done")

    def roles() -> set[tuple[str, str]]:
        body = check(site.run(tenant.client.get(f"/users/{target.id}")), 200)
        return {(r["group"]["id"], r["profile"]["id"]) for r in body["userRoles"]}

    assert roles() == {(tenant.group, CUSTOMER_R), (sub, DEVICE_MANAGER_R)}
    browser.submit("button[aria-label='Remove DEVICE MANAGER [R] on Roles Co lab']")
    assert roles() == {(tenant.group, CUSTOMER_R)}
    # Lock then unlock (PUT /v2/users/{id} locked): a session the user had ends at once.
    token = new_token()
    site.run(console_sessions.create(site.env.pool, token_hash(token), target.id, tenant.group, "csrf", now_ms()))

    async def home_status() -> int:
        async with aiohttp.ClientSession(cookies={"bh_console": token}) as http:
            async with http.get(f"{site.base}/console/", allow_redirects=False) as resp:
                return resp.status

    assert site.run(home_status()) == 200
    browser.submit("#lock-user")
    assert check(site.run(tenant.client.get(f"/users/{target.id}")), 200)["locked"] is True
    assert site.run(home_status()) == 303
    browser.submit("#lock-user")
    assert check(site.run(tenant.client.get(f"/users/{target.id}")), 200)["locked"] is False
    browser.submit("#delete-user")
    assert site.run(tenant.client.get(f"/users/{target.id}")).status == 404


def test_a_new_user_gets_an_invitation_link_shown_once_that_sets_its_password(site, browser):
    tenant = site.tenant("Invite Admin Co")
    admin = site.person([(tenant.group, ADMIN)])
    browser.login(admin)
    browser.open("/console/users/new")
    browser.check_plain()
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    for field, value in (("#firstName", "Ada"), ("#lastName", "Byron"), ("#email", email)):
        browser.find(field).send_keys(value)
    browser.find(f"#groupId option[value='{tenant.group}']").click()
    browser.find(f"#profileId option[value='{CUSTOMER_R}']").click()
    browser.submit("#create-user")
    assert "created" in browser.text("#done")
    found = check(site.run(tenant.client.get("/users/", params={"text": email})), 200)["data"]
    assert [u["email"] for u in found] == [email]
    browser.submit("#issue-link")
    link = browser.find("#issued-link").get_attribute("value")
    assert "/console/password/set?token=" in link
    stored = site.run(site.env.pool.fetch("SELECT token_hash FROM console_links WHERE user_id = $1", found[0]["id"]))
    assert len(stored) == 1 and link.split("token=")[1] not in stored[0]["token_hash"]
    browser.open(f"/console/users/{found[0]['id']}")
    assert link not in browser.driver.page_source  # shown once
    browser.logout()
    browser.driver.get(link)
    browser.find("#new").send_keys("invited and set 1")
    browser.find("#again").send_keys("invited and set 1")
    browser.submit("#set-password")
    assert "Your password is set" in browser.text()


def test_a_user_holding_more_rights_gets_no_link_from_a_user_manager(site, browser):
    tenant = site.tenant("Escalate Co")
    manager = site.person([(tenant.group, USER_MANAGER_W)])
    admin = site.person([(tenant.group, ADMIN)])
    browser.login(manager)
    browser.open(f"/console/users/{admin.id}")
    browser.submit("#issue-link")
    assert "Not allowed" in browser.text() and not browser.finds("#issued-link")
    assert site.run(site.env.pool.fetch("SELECT 1 FROM console_links WHERE user_id = $1", admin.id)) == []


def test_an_api_user_credential_is_shown_once_works_and_renewing_it_ends_the_old_one(site, browser):
    tenant = site.tenant("Access Co")
    admin = site.person([(tenant.group, ADMIN)])
    browser.login(admin)
    browser.open("/console/api-users")
    browser.check_plain()
    browser.shot("api-users")
    browser.submit("#new-api-user")
    browser.check_plain()
    browser.find("#name").send_keys("ingest robot")
    browser.find(f"#groupId option[value='{tenant.group}']").click()
    browser.find(f"input[name=profileIds][value='{DEVICE_MANAGER_R}']").click()
    browser.submit("#create-api-user")
    login, token = browser.text("#credential-id"), browser.text("#credential-token")
    browser.check_plain()
    browser.shot("api-user-created")

    async def status(user: str, secret: str) -> int:
        async with aiohttp.ClientSession() as http:
            basic = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
            async with http.get(f"{site.base}/v2/devices/", headers={"Authorization": basic}) as resp:
                return resp.status

    assert site.run(status(login, token)) == 200
    body = check(site.run(tenant.client.get(f"/api-users/{login}")), 200)
    assert body["name"] == "ingest robot" and [p["id"] for p in body["profiles"]] == [DEVICE_MANAGER_R]
    browser.submit("#to-api-user")
    assert token not in browser.driver.page_source
    browser.driver.refresh()
    assert token not in browser.driver.page_source and login in browser.text("#api-user-id")
    browser.submit("#renew")
    renewed = browser.text("#credential-token")
    assert renewed != token
    assert site.run(status(login, renewed)) == 200
    assert site.run(status(login, token)) == 401
    browser.submit("#to-api-user")
    assert renewed not in browser.driver.page_source
    # Edit its profiles, then delete it.
    browser.find(f"#edit-api-user input[name=profileIds][value='{DEVICE_MANAGER_R}']").click()
    browser.find(f"#edit-api-user input[name=profileIds][value='{CUSTOMER_R}']").click()
    browser.submit("#save-api-user")
    body = check(site.run(tenant.client.get(f"/api-users/{login}")), 200)
    assert [p["id"] for p in body["profiles"]] == [CUSTOMER_R]
    browser.submit("#delete-api-user")
    assert site.run(tenant.client.get(f"/api-users/{login}")).status == 404
    assert site.run(status(login, renewed)) == 401


def test_the_group_tree_shows_the_subtree_and_creates_renames_moves_and_deletes_groups(site, browser):
    tenant = site.tenant("Tree Co")
    child = check(site.run(site.env.root.post("/groups/", {"name": "Tree Co north", "parentId": tenant.group})), 201)["id"]
    other = site.tenant("Tree Other")
    admin = site.person([(tenant.group, ADMIN)])
    browser.login(admin)
    browser.open("/console/groups")
    browser.check_plain()
    browser.shot("groups")
    tree = browser.find("#group-tree")
    assert tree.find_element("css selector", f"li[data-id='{tenant.group}'] li[data-id='{child}']")
    assert not browser.finds(f"li[data-id='{other.group}']")
    browser.find("#group-name").send_keys("Tree Co north-west")
    browser.find(f"#group-parent option[value='{child}']").click()
    browser.submit("#create-group")
    assert "created" in browser.text("#done")
    made = check(site.run(tenant.client.get("/groups/", params={"name": "north-west"})), 200)["data"]
    assert [(g["name"], g["parentId"]) for g in made] == [("Tree Co north-west", child)]
    browser.open("/console/groups")
    assert browser.find(f"li[data-id='{child}'] li[data-id='{made[0]['id']}']")
    browser.open(f"/console/groups/{made[0]['id']}")
    browser.find("#rename").clear()
    browser.find("#rename").send_keys("Tree Co far west")
    browser.submit("#save-group")
    assert check(site.run(tenant.client.get(f"/groups/{made[0]['id']}")), 200)["name"] == "Tree Co far west"
    # Move it under the top group, then back under "north" (its sub-groups go with it).
    browser.find(f"#move-parent option[value='{tenant.group}']").click()
    browser.submit("#move-button")
    assert "moved" in browser.text("#done")
    assert check(site.run(tenant.client.get(f"/groups/{made[0]['id']}")), 200)["parentId"] == tenant.group
    browser.open(f"/console/groups/{child}")
    assert browser.finds("#sub-groups") == []  # "north" has no sub-group left
    options = [o.get_attribute("value") for o in browser.finds("#move-parent option")]
    assert child not in options and tenant.group in options  # never under itself
    browser.open(f"/console/groups/{made[0]['id']}")
    browser.find(f"#move-parent option[value='{child}']").click()
    browser.submit("#move-button")
    browser.open("/console/groups")
    assert browser.find(f"li[data-id='{child}'] li[data-id='{made[0]['id']}']")
    browser.open(f"/console/groups/{child}")
    browser.submit("#delete-group")  # it holds a sub-group: the API's conflict is shown
    assert "still holds" in browser.text("#form-error")
    browser.open(f"/console/groups/{made[0]['id']}")
    browser.submit("#delete-group")
    assert site.run(tenant.client.get(f"/groups/{made[0]['id']}")).status == 404


def test_contracts_show_their_tokens_and_the_devices_holding_one(site, browser):
    tenant = site.tenant("Tokens Co")
    device_type = site.run(make_device_type(tenant.client, tenant))
    for ident in ("A1", "A2"):
        check(site.run(tenant.client.post("/devices/", {"id": ident, "name": f"meter {ident}", "pac": "0" * 16,
                                                         "deviceTypeId": device_type})), 201)
    admin = site.person([(tenant.group, ADMIN)])
    browser.login(admin)
    browser.open("/console/contracts")
    browser.check_plain()
    browser.shot("contracts")
    contract = check(site.run(tenant.client.get(f"/contract-infos/{tenant.contract}")), 200)
    row = browser.find(f"#contracts tr[data-id='{tenant.contract}']")
    assert row.find_element("css selector", ".tokens-in-use").text == str(contract["tokensInUse"])
    browser.open(f"/console/contracts/{tenant.contract}")
    browser.check_plain()
    browser.shot("contract")
    assert browser.text("#tokens-in-use") == str(contract["tokensInUse"])
    assert browser.text("#tokens-used") == str(contract["tokensUsed"])
    holders = check(site.run(tenant.client.get(f"/contract-infos/{tenant.contract}/devices")), 200)["data"]
    shown = [r.text.split()[0] for r in browser.finds("#contract-devices tbody tr") if r.text != "None."]
    assert sorted(shown) == sorted(d["id"] for d in holders)
    browser.find("#contract-max").clear()
    browser.find("#contract-max").send_keys("40")
    browser.submit("#save-contract")
    assert check(site.run(tenant.client.get(f"/contract-infos/{tenant.contract}")), 200)["maxTokens"] == 40
    browser.open("/console/contracts/new")
    browser.check_plain()
    browser.find(f"#groupId option[value='{tenant.group}']").click()
    browser.submit("#create-contract")  # no name: the API's reason is shown beside the field
    assert [e.text for e in browser.finds(".field-error")] == ["must be at least 1 characters"]
    browser.find("#name").send_keys("Tokens Co extra")
    browser.find("#maxTokens").clear()
    browser.find("#maxTokens").send_keys("7")
    browser.submit("#create-contract")
    assert "created" in browser.text("#done")
    made = check(site.run(tenant.client.get("/contract-infos/", params={"name": "Tokens Co extra"})), 200)["data"]
    assert [(c["name"], c["maxTokens"], c["group"]["id"]) for c in made] == [("Tokens Co extra", 7, tenant.group)]


async def _undelivered(pool, device: str, device_type: str, group: str, message: str) -> None:
    await pool.execute(
        "INSERT INTO undelivered_callbacks(delivery_id, device_id, device_type_id, group_id, callback_id, time, "
        "data, snr, status, message, callback, parameters, delivery, registration_id) VALUES ($1, $2, $3, $4, "
        "'cb-console', $5, 'ff', 9.5, 600, $6, $7, '{}', '{}', (SELECT registration_id FROM devices WHERE id = $2))",
        f"dead-{uuid.uuid4().hex}", device, device_type, group, now_ms(), message,
        {"url": "http://receiver.example/", "method": "POST"})


def test_the_error_log_shows_the_groups_undelivered_callbacks_and_no_other_tenants(site, browser):
    mine, theirs = site.tenant("Log Co"), site.tenant("Log Other")
    for tenant, device, message in ((mine, "C1", "connection refused"), (theirs, "C2", "their secret failure")):
        device_type = site.run(make_device_type(tenant.client, tenant))
        check(site.run(tenant.client.post("/devices/", {"id": device, "name": device, "pac": "0" * 16,
                                                         "deviceTypeId": device_type})), 201)
        site.run(_undelivered(site.env.pool, device, device_type, tenant.group, message))
    admin = site.person([(mine.group, ADMIN)])
    browser.login(admin)
    browser.open("/console/error-log")
    browser.check_plain()
    browser.shot("error-log")
    shown = browser.text("#error-log")
    assert "connection refused" in shown and "C1" in shown and "600" in shown and "cb-console" in shown
    assert "their secret failure" not in shown and "C2" not in shown
    browser.open(f"/console/error-log?groupId={theirs.group}")  # another tenant's group: the API's 404
    assert "Not found" in browser.text() and "their secret failure" not in browser.driver.page_source
    browser.open("/console/error-log?since=2999-01-01+00:00")
    assert "Nothing undelivered" in browser.text("#error-log")
    browser.open("/console/error-log?since=yesterday")
    assert "Since is not a date and time" in browser.text()


def test_a_device_manager_sees_no_user_pages_and_gets_the_apis_403(site, browser):
    tenant = site.tenant("Rights DM Co")
    person = site.person([(tenant.group, DEVICE_MANAGER_R)])
    browser.login(person)
    menu = browser.text("nav.side")
    assert "Users" not in menu and "API access" not in menu and "Devices" in menu
    browser.open("/console/users")
    assert "Not allowed" in browser.text() and "You are not allowed to read users." in browser.text()
    browser.open("/console/api-users")
    assert "You are not allowed to read api-users." in browser.text()


def _forged_post(browser: Browser, path: str, fields: dict[str, str]) -> tuple[int, str]:
    """POST a form the page does not offer, with the session's CSRF token (a user crafting it by hand)."""
    result = browser.driver.execute_async_script("""
        const [path, fields, done] = arguments;
        const body = new URLSearchParams(fields);
        body.set('csrf', document.querySelector('input[name=csrf]').value);
        fetch(path, {method: 'POST', body, redirect: 'manual'}).then(async r => done([r.status, await r.text()]));
    """, path, fields)
    return int(result[0]), str(result[1])


def test_a_customer_reader_sees_no_write_buttons_and_a_forged_post_is_refused_by_the_api(site, browser):
    tenant = site.tenant("Rights CR Co")
    person = site.person([(tenant.group, CUSTOMER_R)])
    other = site.person([(tenant.group, CUSTOMER_R)], first="Other")
    browser.login(person)
    for path, buttons in (("/console/users", "#new-user"), (f"/console/users/{other.id}", "#add-role-button, "
                          "#delete-user, #lock-user, #issue-link, #save-user"), ("/console/api-users", "#new-api-user"),
                          ("/console/groups", "#create-group"), (f"/console/groups/{tenant.group}", "#save-group"),
                          ("/console/contracts", "#new-contract"),
                          (f"/console/contracts/{tenant.contract}", "#save-contract")):
        browser.open(path)
        assert browser.finds("main h1"), path
        assert browser.finds(buttons) == [], f"{path} shows {buttons}"
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    status, page = _forged_post(browser, "/console/users/new", {
        "firstName": "Forged", "lastName": "User", "email": email, "groupId": tenant.group, "profileId": CUSTOMER_R})
    assert status == 403 and "You are not allowed to write users." in page
    assert check(site.run(tenant.client.get("/users/", params={"text": email})), 200)["data"] == []
    status, page = _forged_post(browser, f"/console/users/{other.id}/delete", {})
    assert status == 403
    assert site.run(tenant.client.get(f"/users/{other.id}")).status == 200
    status, page = _forged_post(browser, "/console/groups/new", {"name": "Forged group", "parentId": tenant.group})
    assert status == 403
    status, page = _forged_post(browser, f"/console/users/{other.id}/link", {})
    assert status == 403 and site.run(site.env.pool.fetch("SELECT 1 FROM console_links WHERE user_id = $1",
                                                          other.id)) == []
