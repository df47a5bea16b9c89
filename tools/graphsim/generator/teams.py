"""Generated Teams: each team with its group site and members, channels (each with a files
folder in the site's library), root posts (every fourth older than eight months, one
deleted) and replies."""

from __future__ import annotations

import base64
import datetime as dt
import struct
import zlib
from typing import Any

from ..config import ScaleProfile
from ..httpcore import iso
from ..store import NewItem, Store
from . import names
from .base import Gen
from .people import Person
from .sites import add_site


def generate_teams(
    store: Store, gen: Gen, profile: ScaleProfile, host: str, users: list[Person]
) -> None:
    for i in range(profile.teams):
        name = names.TEAM_NAMES[i % len(names.TEAM_NAMES)] + (
            "" if i < len(names.TEAM_NAMES) else f" {i}"
        )
        team_id = gen.guid("team", i)
        channel_names = names.CHANNEL_NAMES[: profile.channels_per_team]
        site_path = "/sites/" + "".join(c for c in name if c.isalnum())
        site_id, folders = add_site(
            store,
            gen,
            profile,
            host,
            f"team{i}",
            name,
            site_path,
            files=profile.files_per_site // 2,
            channels=channel_names,
        )
        stamp = gen.ago(gen.rng("team", i), 800, 400)
        nick = "".join(c for c in name if c.isalnum()).lower()
        # The team's Microsoft 365 group members (group-list-members.md).
        picked = gen.rng("team-members", i).sample(range(len(users)), min(len(users), 2 + i % 3))
        members = [users[n].id for n in sorted(picked)]
        rows = [
            NewItem(
                "team",
                team_id,
                "teams",
                "tenant",
                {
                    "id": team_id,
                    "displayName": name,
                    "description": f"Team for {name}",
                    "createdDateTime": stamp,
                    "visibility": "private",
                    "isArchived": False,
                    "webUrl": (
                        "https://teams.microsoft.com/l/team/19%3a"
                        f"{team_id.replace('-', '')}%40thread.tacv2/conversations?groupId={team_id}"
                    ),
                    "_site": site_id,
                    "_mail": f"{nick}@{host.split('.', maxsplit=1)[0]}.onmicrosoft.com",
                    "_mailNickname": nick,
                    "_members": members,
                },
                name=name,
            )
        ]
        for c, cname in enumerate(channel_names):
            ch_id = f"19:{gen.guid('channel', i, c).replace('-', '')}@thread.tacv2"
            rows.append(
                NewItem(
                    "channel",
                    team_id,
                    f"{team_id}/channels",
                    team_id,
                    {
                        "id": ch_id,
                        "createdDateTime": stamp,
                        "displayName": cname,
                        "description": f"{cname} channel",
                        "email": "",
                        "membershipType": "standard",
                        "webUrl": f"https://teams.microsoft.com/l/channel/{ch_id}/{cname}?groupId={team_id}",
                        "_folder": folders.get(cname),
                    },
                    name=cname,
                )
            )
            rows.extend(
                _channel_messages(gen, team_id, ch_id, i, c, profile.posts_per_channel, users)
            )
        with store.transaction() as tx:
            tx.insert_many(rows)


def _channel_messages(
    gen: Gen, team_id: str, ch_id: str, i: int, c: int, posts: int, users: list[Person]
) -> list[NewItem]:
    rows: list[NewItem] = []
    base = gen.anchor
    for p in range(posts):
        rng = gen.rng("post", i, c, p)
        # Most posts are recent; every fourth is older than eight months (outside delta).
        days = rng.uniform(300, 600) if p % 4 == 3 else rng.uniform(0.5, 200)
        created = base - dt.timedelta(days=days, seconds=p)
        msg_id = str(int(created.timestamp() * 1000))
        author = users[rng.randrange(len(users))] if users else Person("", "Someone", "")
        deleted = p == 2 and posts > 3
        rows.append(
            _chat(
                gen,
                "chatMessage",
                team_id,
                ch_id,
                msg_id,
                None,
                created,
                author,
                rng,
                deleted=deleted,
            )
        )
        for r in range(rng.randint(0, 3)):
            rcreated = created + dt.timedelta(minutes=5 * (r + 1), seconds=r)
            reply_id = str(int(rcreated.timestamp() * 1000) + 1 + r)
            rauthor = users[rng.randrange(len(users))] if users else author
            rows.append(
                _chat(gen, "chatReply", team_id, ch_id, reply_id, msg_id, rcreated, rauthor, rng)
            )
    return rows


def _chat(
    gen: Gen,
    kind: str,
    team_id: str,
    ch_id: str,
    msg_id: str,
    reply_to: str | None,
    created: dt.datetime,
    author: Person,
    rng: Any,
    *,
    deleted: bool = False,
) -> NewItem:

    stamp = iso(created)
    text = rng.choice(
        [
            "Hello team!",
            "Can someone review the PR?",
            "Réunion à 15h 👍",
            "The build is green again.",
            "見積書を送りました。",
            "Who has the slides?",
        ]
    )
    data: dict[str, Any] = {
        "id": msg_id,
        "replyToId": reply_to,
        "etag": msg_id,
        "messageType": "message",
        "createdDateTime": stamp,
        "lastModifiedDateTime": stamp,
        "lastEditedDateTime": None,
        "deletedDateTime": stamp if deleted else None,
        "subject": None if reply_to else rng.choice([None, "Weekly update", "Question"]),
        "summary": None,
        "chatId": None,
        "importance": "normal",
        "locale": "en-us",
        "webUrl": f"https://teams.microsoft.com/l/message/{ch_id}/{msg_id}?groupId={team_id}",
        "policyViolation": None,
        "eventDetail": None,
        "from": {
            "application": None,
            "device": None,
            "user": {
                "@odata.type": "#microsoft.graph.teamworkUserIdentity",
                "id": author.id,
                "displayName": author.name,
                "userIdentityType": "aadUser",
            },
        },
        "body": {"contentType": "html", "content": f"<p>{text}</p>"},
        "channelIdentity": {"teamId": team_id, "channelId": ch_id},
        "attachments": [],
        "mentions": [],
        "reactions": [],
        "messageHistory": [],
    }
    if int(msg_id) % 3 == 0 and not deleted:
        _add_hosted_image(data, team_id, ch_id, msg_id, reply_to)
    parent = f"{ch_id}/{reply_to}" if reply_to else ch_id
    scope = parent if reply_to else ch_id
    return NewItem(kind, team_id, scope, parent, data, key=f"{ch_id}/{msg_id}")


def tiny_png(seed: int) -> bytes:
    """A valid 8x8 PNG of one colour derived from ``seed`` (deterministic)."""
    colour = bytes(((seed * 67) % 256, (seed * 131) % 256, (seed * 199) % 256))
    raw = b"".join(b"\x00" + colour * 8 for _ in range(8))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _add_hosted_image(
    data: dict[str, Any], team_id: str, ch_id: str, msg_id: str, reply_to: str | None
) -> None:
    """An image pasted into the message: hosted content that the HTML body references by
    its Graph URL (resources/chatmessagehostedcontent.md; chatmessage-list-hostedcontents.md).
    Every third message has one (no random draw, so the rest of the tenant is unchanged)."""
    hosted_id = base64.b64encode(f"id=x_0-{msg_id}-img,type=1".encode()).decode()
    path = f"messages/{reply_to}/replies/{msg_id}" if reply_to else f"messages/{msg_id}"
    url = (
        f"https://graph.microsoft.com/v1.0/teams/{team_id}/channels/{ch_id}/{path}"
        f"/hostedContents/{hosted_id}/$value"
    )
    data["body"]["content"] += (
        f'<p><img src="{url}" alt="image" itemid="{hosted_id}" width="8" height="8"></p>'
    )
    png = tiny_png(int(msg_id) % 997)
    data["_hosted"] = [
        {"id": hosted_id, "contentType": "image/png", "bytes": base64.b64encode(png).decode()}
    ]
