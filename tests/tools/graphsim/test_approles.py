"""Application permissions: each workload refuses a token without the permission its
API page lists, in that workload's own error shape (docs/simulator.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tools.graphsim.testing import RunningTenant, app_token, running_tenant, trusted_session
from tools.graphsim.tokens import APP_ROLES

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTenant]:
    with running_tenant(tmp_path_factory.mktemp("roles"), seed=2, throttling=False) as t:
        yield t


def session_with(tenant: RunningTenant, roles: list[str]) -> requests.Session:
    tenant.admin.switches(app_roles=roles)
    s = trusted_session(tenant.info)
    s.headers["Authorization"] = f"Bearer {app_token(tenant.info)}"
    tenant.admin.switches(app_roles=list(APP_ROLES))
    return s


def mailbox_user(tenant: RunningTenant) -> str:
    return next(u["id"] for u in tenant.admin.users() if u.get("mailbox") and u.get("drive"))


def error(resp: requests.Response) -> tuple[int, str, str]:
    body = resp.json()["error"]
    return resp.status_code, body["code"], body["message"]


def test_every_workload_answers_a_missing_permission_in_its_own_shape(
    tenant: RunningTenant,
) -> None:
    user = mailbox_user(tenant)
    base = tenant.info.graph_url
    s = session_with(tenant, ["User.Read.All"])
    assert s.get(f"{base}/users/{user}").status_code == 200
    assert error(s.get(f"{base}/users/{user}/mailFolders")) == (
        403,
        "ErrorAccessDenied",
        "Access is denied. Check credentials and try again.",
    )
    assert error(s.get(f"{base}/users/{user}/contactFolders"))[1] == "ErrorAccessDenied"
    assert error(s.get(f"{base}/users/{user}/calendars"))[1] == "ErrorAccessDenied"
    assert error(s.get(f"{base}/users/{user}/drive")) == (403, "accessDenied", "Access denied")
    assert error(s.get(f"{base}/sites/getAllSites"))[1] == "accessDenied"
    status, code, message = error(s.get(f"{base}/teams"))
    assert (status, code) == (403, "Forbidden")
    assert "API requires one of 'Team.ReadBasic.All" in message
    assert "Roles on the request 'User.Read.All'" in message
    directory = session_with(tenant, ["Mail.Read"])
    assert error(directory.get(f"{base}/users")) == (
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
    assert directory.get(f"{base}/users/{user}/mailFolders").status_code == 200


def test_a_token_without_roles_gets_sharepoint_s_own_message(tenant: RunningTenant) -> None:
    s = session_with(tenant, [])
    status, code, message = error(s.get(f"{tenant.info.graph_url}/sites/getAllSites"))
    assert (status, code) == (403, "accessDenied")
    assert message == "Either scp or roles claim need to be present in the token."


def test_reads_accept_read_permissions_and_writes_need_read_write(tenant: RunningTenant) -> None:
    user = mailbox_user(tenant)
    base = tenant.info.graph_url
    s = session_with(tenant, ["Mail.Read"])
    assert s.get(f"{base}/users/{user}/mailFolders").status_code == 200
    created = s.post(f"{base}/users/{user}/mailFolders", json={"displayName": "roles-test"})
    assert error(created)[:2] == (403, "ErrorAccessDenied")
    rw = session_with(tenant, ["Mail.ReadWrite"])
    assert (
        rw.post(f"{base}/users/{user}/mailFolders", json={"displayName": "roles-test"}).status_code
        == 201
    )


def test_tokens_carry_the_permissions_consented_when_they_were_issued(
    tenant: RunningTenant,
) -> None:
    user = mailbox_user(tenant)
    base = tenant.info.graph_url
    before = session_with(tenant, list(APP_ROLES))
    tenant.admin.switches(revoke_roles=["Mail.Read", "Mail.ReadWrite"])
    try:
        # The token issued before the revocation still carries Mail.ReadWrite ...
        assert before.get(f"{base}/users/{user}/mailFolders").status_code == 200
        # ... a new one does not.
        after = trusted_session(tenant.info)
        after.headers["Authorization"] = f"Bearer {app_token(tenant.info)}"
        assert after.get(f"{base}/users/{user}/mailFolders").status_code == 403
    finally:
        tenant.admin.switches(app_roles=list(APP_ROLES))


def test_group_conversations_and_calendar_check_their_own_permissions(
    tenant: RunningTenant,
) -> None:
    base = tenant.info.graph_url
    inventory = tenant.admin.inventory(detail=False)
    gid = next(k for k, g in inventory["groups"].items() if g.get("mailbox"))
    window = {"startDateTime": "2020-01-01T00:00:00Z", "endDateTime": "2030-01-01T00:00:00Z"}
    none = session_with(tenant, ["GroupMember.Read.All"])
    assert none.get(f"{base}/groups/{gid}").status_code == 200
    for path in ("conversations", "threads", "calendarView"):
        assert error(none.get(f"{base}/groups/{gid}/{path}", params=window))[1] == (
            "ErrorAccessDenied"
        ), path
    least = session_with(tenant, ["Group-Conversation.Read.All", "Calendars.ReadBasic"])
    assert least.get(f"{base}/groups/{gid}/conversations").status_code == 200
    assert least.get(f"{base}/groups/{gid}/threads").status_code == 200
    assert least.get(f"{base}/groups/{gid}/calendarView", params=window).status_code == 200
    # group-list-events.md: application permissions are not supported at all.
    assert error(least.get(f"{base}/groups/{gid}/events"))[:2] == (403, "ErrorAccessDenied")
    broad = session_with(tenant, ["Group.Read.All", "Calendars.ReadWrite"])
    assert broad.get(f"{base}/groups/{gid}/conversations").status_code == 200
    assert error(broad.get(f"{base}/groups/{gid}/events"))[:2] == (403, "ErrorAccessDenied")
