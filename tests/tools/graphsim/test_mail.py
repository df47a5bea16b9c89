"""Exchange behaviour that restore relies on (mailmodel.py, user-post-messages.md, ...)."""

from __future__ import annotations

import base64

import pytest
import requests

from tools.graphsim.testing import RunningTenant

from .probe import collect, delta_round, get

pytestmark = pytest.mark.sim

MIME = (
    b"From: =?utf-8?q?Zo=C3=AB?= <zoe@fabrikam.com>\r\n"
    b"To: someone@contoso.onmicrosoft.com\r\n"
    b"Subject: =?utf-8?q?R=C3=A9sum=C3=A9?=\r\n"
    b"Date: Tue, 01 Feb 2022 10:00:00 +0000\r\n"
    b"Message-ID: <original-123@fabrikam.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n"
    b'--b\r\nContent-Type: application/pdf; name="a.pdf"\r\n'
    b'Content-Disposition: attachment; filename="a.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjcK\r\n--b--\r\n"
)


@pytest.fixture
def ctx(fresh_tenant: RunningTenant) -> tuple[RunningTenant, requests.Session, str]:
    upn = next(u["userPrincipalName"] for u in fresh_tenant.admin.users() if u["purpose"] == "user")
    return fresh_tenant, fresh_tenant.graph(), upn


def test_mime_upload_is_a_draft_served_back_byte_for_byte(
    ctx: tuple[RunningTenant, requests.Session, str],
) -> None:
    t, s, upn = ctx
    resp = s.post(
        t.url(f"/users/{upn}/mailFolders/inbox/messages"),
        data=base64.b64encode(MIME),
        headers={"Content-Type": "text/plain"},
    )
    assert resp.status_code == 201
    msg = resp.json()
    assert msg["isDraft"] is True
    assert msg["subject"] == "Résumé"
    assert msg["internetMessageId"] == "<original-123@fabrikam.com>"
    assert msg["hasAttachments"] is True
    assert s.get(t.url(f"/users/{upn}/messages/{msg['id']}/$value")).content == MIME
    atts = collect(s, t.url(f"/users/{upn}/messages/{msg['id']}/attachments"))
    assert [(a["name"], base64.b64decode(a["contentBytes"])) for a in atts] == [
        ("a.pdf", b"%PDF-1.7\n")
    ]
    # isDraft cannot be changed afterwards.
    s.patch(t.url(f"/users/{upn}/messages/{msg['id']}"), json={"isDraft": False})
    assert get(s, t.url(f"/users/{upn}/messages/{msg['id']}"))["isDraft"] is True


def test_malformed_mime_is_kept_and_bad_base64_is_400(
    ctx: tuple[RunningTenant, requests.Session, str],
) -> None:
    t, s, upn = ctx
    garbage = b"\x00\xffnot really a message\r\n\r\n\r\nSubject oops"
    resp = s.post(
        t.url(f"/users/{upn}/mailFolders/inbox/messages"),
        data=base64.b64encode(garbage),
        headers={"Content-Type": "text/plain"},
    )
    assert resp.status_code == 201
    assert s.get(t.url(f"/users/{upn}/messages/{resp.json()['id']}/$value")).content == garbage
    bad = s.post(
        t.url(f"/users/{upn}/mailFolders/inbox/messages"),
        data=b"%%% not base64 %%%",
        headers={"Content-Type": "text/plain"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "ErrorMimeContentInvalidBase64String"


def test_json_create_with_extended_properties_is_not_a_draft(
    ctx: tuple[RunningTenant, requests.Session, str],
) -> None:
    t, s, upn = ctx
    body = {
        "subject": "Restored",
        "body": {"contentType": "html", "content": "<p>Hi</p>"},
        "internetMessageId": "<keep-me@fabrikam.com>",
        "receivedDateTime": "2001-01-01T00:00:00Z",  # ignored by Graph
        "toRecipients": [{"emailAddress": {"address": upn}}],
        "from": {"emailAddress": {"name": "Sender", "address": "sender@fabrikam.com"}},
        "singleValueExtendedProperties": [
            {"id": "Integer 0x0E07", "value": "1"},
            {"id": "SystemTime 0x0E06", "value": "2021-03-04T05:06:07Z"},
            {"id": "SystemTime 0x0039", "value": "2021-03-04T05:00:00Z"},
        ],
    }
    msg = s.post(t.url(f"/users/{upn}/mailFolders/inbox/messages"), json=body).json()
    assert msg["isDraft"] is False
    assert msg["isRead"] is True
    assert msg["receivedDateTime"] == "2021-03-04T05:06:07Z"
    assert msg["sentDateTime"] == "2021-03-04T05:00:00Z"
    assert msg["internetMessageId"] == "<keep-me@fabrikam.com>"
    unread = s.post(
        t.url(f"/users/{upn}/mailFolders/inbox/messages"),
        json={**body, "singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "0"}]},
    ).json()
    assert unread["isDraft"] is False
    assert unread["isRead"] is False
    draft = s.post(
        t.url(f"/users/{upn}/mailFolders/inbox/messages"), json={"subject": "plain"}
    ).json()
    assert draft["isDraft"] is True
    # Draft-only properties cannot change on a sent message; read state can.
    assert (
        s.patch(t.url(f"/users/{upn}/messages/{msg['id']}"), json={"subject": "x"}).status_code
        == 400
    )
    changed = s.patch(t.url(f"/users/{upn}/messages/{msg['id']}"), json={"isRead": False}).json()
    assert changed["isRead"] is False
    assert changed["changeKey"] != msg["changeKey"]
    assert changed["@odata.etag"] == f'W/"{changed["changeKey"]}"'
    mime = s.get(t.url(f"/users/{upn}/messages/{msg['id']}/$value")).content
    assert b"Message-ID: <keep-me@fabrikam.com>" in mime
    assert b"Subject: Restored" in mime


def test_delete_moves_to_deleted_items_then_removes(
    ctx: tuple[RunningTenant, requests.Session, str],
) -> None:
    t, s, upn = ctx
    msg = collect(
        s, t.url(f"/users/{upn}/mailFolders/inbox/messages?$select=id,internetMessageId")
    )[0]
    before = get(s, t.url(f"/users/{upn}/mailFolders/deleteditems"))["totalItemCount"]
    assert s.delete(t.url(f"/users/{upn}/messages/{msg['id']}")).status_code == 204
    assert s.get(t.url(f"/users/{upn}/messages/{msg['id']}")).status_code == 404
    trash = collect(
        s, t.url(f"/users/{upn}/mailFolders/deleteditems/messages?$select=id,internetMessageId")
    )
    assert len(trash) == before + 1
    moved = next(m for m in trash if m["internetMessageId"] == msg["internetMessageId"])
    assert moved["id"] != msg["id"]
    assert s.delete(t.url(f"/users/{upn}/messages/{moved['id']}")).status_code == 204
    assert get(s, t.url(f"/users/{upn}/mailFolders/deleteditems"))["totalItemCount"] == before


def test_move_copy_and_folders(ctx: tuple[RunningTenant, requests.Session, str]) -> None:
    t, s, upn = ctx
    folder = s.post(
        t.url(f"/users/{upn}/mailFolders/inbox/childFolders"),
        json={"displayName": "Restored 2024-01-01"},
    )
    assert folder.status_code == 201
    dup = s.post(
        t.url(f"/users/{upn}/mailFolders/inbox/childFolders"),
        json={"displayName": "restored 2024-01-01"},
    )
    assert dup.status_code == 409
    assert dup.json()["error"]["code"] == "ErrorFolderExists"
    msg = collect(s, t.url(f"/users/{upn}/mailFolders/inbox/messages?$select=id"))[0]
    moved = s.post(
        t.url(f"/users/{upn}/messages/{msg['id']}/move"),
        json={"destinationId": folder.json()["id"]},
    )
    assert moved.status_code == 201
    assert moved.json()["id"] != msg["id"]
    assert moved.json()["parentFolderId"] == folder.json()["id"]
    assert s.get(t.url(f"/users/{upn}/messages/{msg['id']}")).status_code == 404
    copied = s.post(
        t.url(f"/users/{upn}/messages/{moved.json()['id']}/copy"), json={"destinationId": "archive"}
    ).json()
    assert get(s, t.url(f"/users/{upn}/messages/{moved.json()['id']}"))["id"] == moved.json()["id"]
    assert copied["parentFolderId"] == get(s, t.url(f"/users/{upn}/mailFolders/archive"))["id"]
    top = collect(s, t.url(f"/users/{upn}/mailFolders"))
    assert "Restored 2024-01-01" not in {f["displayName"] for f in top}  # top level only
    hidden = collect(s, t.url(f"/users/{upn}/mailFolders?includeHiddenFolders=true"))
    assert len(hidden) > len(top)
    assert s.delete(t.url(f"/users/{upn}/mailFolders/inbox")).status_code == 403


def test_special_mailboxes(ctx: tuple[RunningTenant, requests.Session, str]) -> None:
    t, s, _ = ctx
    users = {u["purpose"]: u for u in t.admin.users() if u["purpose"] != "user"}
    assert (
        get(s, t.url(f"/users/{users['shared']['id']}/mailboxSettings"))["userPurpose"] == "shared"
    )
    assert get(s, t.url(f"/users/{users['room']['id']}/mailboxSettings"))["userPurpose"] == "room"
    assert len(collect(s, t.url(f"/users/{users['room']['id']}/mailFolders/inbox/messages"))) >= 3
    no_mailbox = next(u for u in t.admin.users() if not u["mailbox"])
    r = s.get(t.url(f"/users/{no_mailbox['id']}/mailFolders/inbox/messages"))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
    assert s.get(t.url(f"/users/{no_mailbox['id']}/drive")).status_code == 200


def test_message_filters_and_prefer_text(ctx: tuple[RunningTenant, requests.Session, str]) -> None:
    t, s, upn = ctx
    all_msgs = collect(s, t.url(f"/users/{upn}/messages?$select=id,receivedDateTime,isRead"))
    pivot = sorted(m["receivedDateTime"] for m in all_msgs)[len(all_msgs) // 2]
    newer = collect(
        s, t.url(f"/users/{upn}/messages?$filter=receivedDateTime ge {pivot}&$select=id")
    )
    assert 0 < len(newer) < len(all_msgs)
    assert s.get(t.url(f"/users/{upn}/messages?$filter=contains(subject,'x')")).status_code == 400
    text = get(
        s,
        t.url(f"/users/{upn}/messages?$top=1"),
        headers={"Prefer": 'outlook.body-content-type="text"'},
    )
    assert text["value"][0]["body"]["contentType"] == "text"


def test_immutable_ids_survive_moves(ctx: tuple[RunningTenant, requests.Session, str]) -> None:
    t, s, upn = ctx

    prefer = {"Prefer": 'IdType="ImmutableId"'}
    s.headers.update(prefer)
    try:
        inbox, inbox_link, _ = delta_round(
            s, t.url(f"/users/{upn}/mailFolders/inbox/messages/delta?$select=subject")
        )
        _, archive_link, _ = delta_round(
            s, t.url(f"/users/{upn}/mailFolders/archive/messages/delta?$select=subject")
        )
        msg = inbox[0]
        moved = s.post(
            t.url(f"/users/{upn}/messages/{msg['id']}/move"), json={"destinationId": "archive"}
        ).json()
        assert moved["id"] == msg["id"]  # the immutable id does not change on a move
        assert (
            get(s, t.url(f"/users/{upn}/messages/{msg['id']}"))["parentFolderId"]
            == moved["parentFolderId"]
        )
        gone, _, _ = delta_round(s, inbox_link)
        arrived, _, _ = delta_round(s, archive_link)
        assert [m["id"] for m in gone] == [msg["id"]]
        assert "@removed" in gone[0]
        assert [m["id"] for m in arrived] == [msg["id"]]
    finally:
        del s.headers["Prefer"]
    # Without the header, ids are the regular ones, which change on moves.
    regular = get(s, t.url(f"/users/{upn}/messages/{msg['id']}"))
    assert regular["id"] != msg["id"]
