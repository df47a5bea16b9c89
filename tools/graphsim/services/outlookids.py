"""Outlook item IDs in the format each request asks for (contacts and events).

Source: concepts/outlook-immutable-id.md. Outlook items (messages, attachments,
events, eventMessages, contacts) have a default ID and an immutable one; a
request gets immutable IDs only with ``Prefer: IdType="ImmutableId"``, and
"this header only applies to the request it is included with". Container types
(mailFolder, calendar, contactFolder) "do not support immutable ID, but their
regular IDs were already constant": they have one ID in both formats. Either
format is accepted where a request names an item.

Messages keep a random immutable ID of their own (mailmodel.py). Contacts and
events answer in two formats only when the switch ``strict_immutable_ids`` is
on (tenant.py): then the immutable ID is ``AAkALg`` followed by the default
ID encoded, so it is stable and can be read back without an index. With the
switch off (the default tenant) both formats are the same string, as before.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ..tenant import Tenant

PREFIX = "AAkALg"
_ID_FIELDS = ("id", "seriesMasterId")


def immutable_of(default_id: str) -> str:
    """The immutable ID of the item whose default ID is ``default_id``."""
    return PREFIX + base64.urlsafe_b64encode(default_id.encode()).decode().rstrip("=")


def default_of(ref: str) -> str:
    """The default ID ``ref`` names (``ref`` itself when it is not an immutable ID)."""
    if not ref.startswith(PREFIX):
        return ref
    body = ref[len(PREFIX) :]
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return ref


def in_format(t: Tenant, value: dict[str, Any], immutable: bool) -> dict[str, Any]:
    """``value`` (a rendered contact or event, or an ``@removed`` entry) with its
    item IDs in the requested format; changed in place and returned."""
    if immutable and t.switches.strict_immutable_ids:
        for field in _ID_FIELDS:
            if isinstance(value.get(field), str) and value[field]:
                value[field] = immutable_of(value[field])
    return value
