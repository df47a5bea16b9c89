"""Generated Exchange content of one mailbox: folders, messages with attachments,
contacts, calendars and events.

Invariants (tested at several seeds): the Inbox holds at least 3 messages and its first
message has a file attachment; every internetMessageId is unique in the tenant; messages
mix plain text, HTML and multipart/alternative bodies, inline images (multipart/related),
file attachments (some shared byte-for-byte across mailboxes), cloud (reference)
attachments and non-ASCII subjects and names; calendars hold single events, an all-day
event, a meeting with attendees and recurring series with a changed and a cancelled
occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import ScaleProfile
from ..services.mailmodel import ROOT, WELL_KNOWN
from ..store import NewItem
from . import names
from .base import Gen, content_spec, log_size
from .calendars import generate_calendars
from .contacts import generate_contacts
from .people import Person

_ATT_EXT = [
    e
    for e in names.EXTENSIONS
    if e[0] in (".pdf", ".docx", ".xlsx", ".txt", ".csv", ".zip", ".jpg")
]


@dataclass
class MailboxOut:
    rows: list[NewItem] = field(default_factory=list)
    well_known: dict[str, str] = field(default_factory=dict)


def _addr(p: Person) -> dict[str, Any]:
    return {"emailAddress": {"name": p.name, "address": p.address}}


def shared_attachments(gen: Gen, count: int = 8) -> list[dict[str, Any]]:
    """A tenant-wide pool of attachments that several mailboxes receive byte-for-byte."""
    pool = []
    for i in range(count):
        rng = gen.rng("shared-att", i)
        ext, ctype, head, text = _ATT_EXT[i % len(_ATT_EXT)]
        size = log_size(rng, 2_000, 600_000)
        stem = names.ATTACHMENT_NAMES[i % len(names.ATTACHMENT_NAMES)]
        pool.append(
            {
                "name": f"Company {stem} {2020 + i}{ext}",
                "contentType": ctype,
                "size": size,
                "content": content_spec(gen, rng, size, text, head, "shared-att", i),
            }
        )
    return pool


def generate_mailbox(
    gen: Gen,
    owner: Person,
    index: int,
    scale: ScaleProfile,
    people: list[Person],
    pool: list[dict[str, Any]],
    *,
    messages: int,
    big_attachment: int = 0,
    room: bool = False,
) -> MailboxOut:
    out = MailboxOut()
    uid = owner.id
    folder_scope = f"{uid}/mailFolders"
    root_id = gen.outlook_id("AAMkAF", uid, "root")
    out.well_known[ROOT] = root_id
    out.rows.append(
        NewItem(
            "mailFolder",
            uid,
            folder_scope,
            uid,
            {
                "id": root_id,
                "displayName": "Top of Information Store",
                "parentFolderId": None,
                "isHidden": True,
                "_wellKnown": ROOT,
            },
            name="Top of Information Store",
        )
    )
    folders: list[str] = []
    for wk, (display, hidden) in WELL_KNOWN.items():
        fid = gen.outlook_id("AAMkAF", uid, wk)
        out.well_known[wk] = fid
        out.rows.append(
            NewItem(
                "mailFolder",
                uid,
                folder_scope,
                root_id,
                {
                    "id": fid,
                    "displayName": display,
                    "parentFolderId": root_id,
                    "isHidden": hidden,
                    "_wellKnown": wk,
                },
                name=display,
            )
        )
    custom: list[str] = []
    for i in range(scale.folders_per_user):
        name = names.MAIL_FOLDERS[i % len(names.MAIL_FOLDERS)] + (
            "" if i < len(names.MAIL_FOLDERS) else f" {i}"
        )
        # Every third folder goes under the Inbox, others at the top level; the first one
        # gets a nested chain so hierarchies are at least three levels deep.
        parent = out.well_known["inbox"] if i % 3 == 1 else root_id
        fid = gen.outlook_id("AAMkAF", uid, "custom", i)
        out.rows.append(
            NewItem(
                "mailFolder",
                uid,
                folder_scope,
                parent,
                {"id": fid, "displayName": name, "parentFolderId": parent, "isHidden": False},
                name=name,
            )
        )
        custom.append(fid)
        if i == 0:
            prev = fid
            for depth, sub in enumerate(names.SUB_FOLDERS[:2]):
                sid = gen.outlook_id("AAMkAF", uid, "sub", depth)
                out.rows.append(
                    NewItem(
                        "mailFolder",
                        uid,
                        folder_scope,
                        prev,
                        {"id": sid, "displayName": sub, "parentFolderId": prev, "isHidden": False},
                        name=sub,
                    )
                )
                custom.append(sid)
                prev = sid
    folders = custom
    # Distribution of messages: Inbox first (at least 3), then Sent Items, then the rest.
    plan: list[str] = []
    inbox_n = max(3, int(messages * 0.45))
    sent_n = int(messages * 0.15)
    drafts_n = max(1, messages // 30)
    deleted_n = max(1, messages // 30)
    plan += [out.well_known["inbox"]] * inbox_n
    plan += [out.well_known["sentitems"]] * sent_n
    plan += [out.well_known["drafts"]] * drafts_n
    plan += [out.well_known["deleteditems"]] * deleted_n
    rest = max(0, messages - len(plan))
    targets = [*folders, out.well_known["archive"], out.well_known["junkemail"]]
    plan += [targets[i % len(targets)] for i in range(rest)]
    others = [p for p in people if p.id != uid] or [owner]
    for n, folder_id in enumerate(plan):
        out.rows.extend(
            _message(
                gen,
                owner,
                uid,
                n,
                folder_id,
                out.well_known,
                others,
                pool,
                big=(big_attachment if n == 4 else 0),
                max_attachment=scale.max_attachment,
            )
        )
    out.rows.extend(generate_contacts(gen, owner, scale, others))
    cal_rows, cal_wk = generate_calendars(gen, owner, scale, others, room)
    out.rows.extend(cal_rows)
    out.well_known.update(cal_wk)
    contacts_root = next(
        r for r in out.rows if r.kind == "contactFolder" and r.data.get("_wellKnown") == "contacts"
    )
    out.well_known["contacts"] = str(contacts_root.data["id"])
    return out


def _message(
    gen: Gen,
    owner: Person,
    uid: str,
    n: int,
    folder_id: str,
    wk: dict[str, str],
    others: list[Person],
    pool: list[dict[str, Any]],
    big: int,
    max_attachment: int,
) -> list[NewItem]:
    rng = gen.rng("msg", uid, n)
    mid = gen.outlook_id("AAMkAG", uid, "msg", n)
    sent = folder_id == wk["sentitems"]
    draft = folder_id == wk["drafts"]
    peer = others[rng.randrange(len(others))]
    if rng.random() < 0.25:
        first, last = rng.choice(names.FIRST), rng.choice(names.LAST)
        peer = Person(
            "",
            f"{first} {last}",
            f"{names.ascii_local(first, last)}@{rng.choice(names.EXTERNAL_DOMAINS)}",
        )
    sender, recipient = (owner, peer) if sent or draft else (peer, owner)
    intl = rng.random() < 0.25
    template = rng.choice(names.SUBJECTS_INTL if intl else names.SUBJECTS)
    subject = template.format(n=rng.randint(1, 999))
    received = gen.ago(rng, 365, 0.01)
    body_kind = rng.choice(["text", "html", "alternative", "alternative"])
    cc = (
        [_addr(p) for p in rng.sample(others, k=min(len(others), rng.randint(0, 2)))]
        if others
        else []
    )
    atts: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    inbox_first = folder_id == wk["inbox"] and n == 0
    if inbox_first or big or rng.random() < 0.35:
        for k in range(1 if inbox_first else rng.randint(1, 3)):
            if rng.random() < 0.3 or (inbox_first and k == 0 and gen.number("first", uid) % 2 == 0):
                shared = pool[rng.randrange(len(pool))]
                atts.append(
                    (
                        {
                            "name": shared["name"],
                            "contentType": shared["contentType"],
                            "size": shared["size"],
                            "isInline": False,
                        },
                        shared["content"],
                    )
                )
            else:
                ext, ctype, head, text = rng.choice(_ATT_EXT)
                size = log_size(rng, 200, max_attachment)
                name = f"{rng.choice(names.ATTACHMENT_NAMES)} {n}-{k}{ext}"
                atts.append(
                    (
                        {"name": name, "contentType": ctype, "size": size, "isInline": False},
                        content_spec(gen, rng, size, text, head, "att", uid, n, k),
                    )
                )
    if big:
        atts.append(
            (
                {
                    "name": f"large-export-{n}.zip",
                    "contentType": "application/zip",
                    "size": big,
                    "isInline": False,
                },
                content_spec(gen, rng, big, False, "PK\x03\x04", "big", uid, n),
            )
        )
    cids: list[str] = []
    # Every mailbox has at least one inline image (message 2) and one cloud attachment
    # (message 1); more appear at random.
    if n == 2 or (body_kind != "text" and rng.random() < 0.12):
        body_kind = "alternative"
        cid = f"image{n}@{gen.number('cid', uid, n):x}"
        cids.append(cid)
        size = log_size(rng, 500, 80_000)
        atts.append(
            (
                {
                    "name": f"image{n}.png",
                    "contentType": "image/png",
                    "size": size,
                    "isInline": True,
                    "contentId": cid,
                },
                content_spec(gen, rng, size, False, "\x89PNG\r\n\x1a\n", "inline", uid, n),
            )
        )
    reference = n == 1 or rng.random() < 0.03
    file_count = sum(1 for a, _ in atts if not a.get("isInline"))
    sender_domain = sender.address.split("@")[-1]
    data: dict[str, Any] = {
        "id": mid,
        "createdDateTime": received,
        "lastModifiedDateTime": received,
        "changeKey": gen.change_key("msg", uid, n),
        "categories": ["Blue category"] if rng.random() < 0.1 else [],
        "receivedDateTime": received,
        "sentDateTime": received,
        "internetMessageId": f"<{gen.guid('imid', uid, n).replace('-', '')}@{sender_domain}>",
        "subject": subject,
        "importance": "high" if rng.random() < 0.08 else "normal",
        "parentFolderId": folder_id,
        "conversationId": "AAQkA" + gen.guid("conv", uid, n // 3).replace("-", ""),
        "isDeliveryReceiptRequested": False,
        "isReadReceiptRequested": False,
        "isRead": draft or sent or rng.random() < 0.7,
        "isDraft": draft,
        "inferenceClassification": "focused" if rng.random() < 0.85 else "other",
        "from": _addr(sender),
        "sender": _addr(sender),
        "toRecipients": [_addr(recipient)],
        "ccRecipients": cc,
        "bccRecipients": [],
        "replyTo": [],
        "flag": {"flagStatus": "flagged" if rng.random() < 0.1 else "notFlagged"},
        "_fileAttachments": file_count,
        "_immutableId": gen.outlook_id("AAkALg", uid, "msg", n),
        "_body": {
            "gen": gen.number("body", uid, n),
            "type": body_kind,
            "greeting": recipient.name.split(" ")[0],
            "cids": cids,
        },
    }
    rows = [NewItem("message", uid, folder_id, folder_id, data)]
    for k, (props, spec) in enumerate(atts):
        aid = gen.outlook_id("AAMkAtt", uid, n, k)
        adata: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "id": aid,
            "lastModifiedDateTime": received,
            "name": props["name"],
            "contentType": props["contentType"],
            "size": props["size"],
            "isInline": props.get("isInline", False),
            "contentId": props.get("contentId"),
            "contentLocation": None,
        }
        rows.append(NewItem("attachment", uid, mid, mid, adata, content=spec))
    if reference:
        aid = gen.outlook_id("AAMkAtt", uid, n, "ref")
        rows.append(
            NewItem(
                "attachment",
                uid,
                mid,
                mid,
                {
                    "@odata.type": "#microsoft.graph.referenceAttachment",
                    "id": aid,
                    "lastModifiedDateTime": received,
                    "name": f"Shared plan {n}.docx",
                    "contentType": names.EXTENSIONS[0][1],
                    "size": 0,
                    "isInline": False,
                },
            )
        )
    return rows
