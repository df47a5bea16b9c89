"""The tenant context shared by the Graph services and the admin API.

`Tenant` wires the store, content store, state-token signer and runtime switches, and
offers the helpers every service needs: resolving users by id or UPN, new ids, delta-token
epochs (bumped by the admin API to expire tokens), pre-authenticated download URLs, and
the invitation log. Thread-safe where noted.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .config import IdentitySettings
from .content import ContentStore
from .httpcore import GraphError, iso, utc_now
from .statetokens import StateTokens, TokenError
from .store import Item, Store

DELTA_SERVICES = ("mail", "contacts", "calendar", "drive", "list", "teams", "folders")


@dataclass
class Switches:
    """Runtime behaviour switches (admin API ``POST /_sim/switches``, or
    ``Simulator(switches={...})``). The documented Microsoft behaviours below are off
    in the default tenant (so existing tests keep their meaning); each is cited in
    docs/simulator.md."""

    protected_api_approved: bool = True  # Teams channel messages answer 403 when False
    unlicensed: set[str] = field(default_factory=set)  # user ids whose services are off
    # Contacts and events answer in the default ID format unless the request has
    # Prefer: IdType="ImmutableId" (outlook-immutable-id.md; services/outlookids.py).
    strict_immutable_ids: bool = False
    # A delegated token needs the ReadWrite permission of what it writes (Mail,
    # Contacts, Calendars, Files): 403 otherwise (each API page's permission table,
    # e.g. user-post-messages.md; app.py).
    enforce_delegated_scopes: bool = False
    # Graph refuses a request body over 4 MB (400 "The maximum request length
    # supported is 4MB.", microsoft-graph-docs issue 11806); upload URLs are not Graph.
    request_size_limit: bool = False
    # A mailbox's maximum message size in bytes (0: none): a message whose body and
    # attachments would exceed it is refused with ErrorMessageSizeExceeded
    # (microsoft-graph-docs-contrib issue 2561; Exchange's MaxReceiveSize).
    max_message_size: int = 0
    # Write shape of SharePoint list item fields (services/listfields.py): a value in
    # the read shape (an object, or a collection without its @odata.type) is 400.
    list_write_shape: bool = False
    # Evolvable enums: a channel's "shared" membershipType and a "systemEventMessage"
    # come back as "unknownFutureValue" unless the request has Prefer:
    # include-unknown-enum-members (channel.md, chatmessage.md; services/teams.py).
    evolvable_enums: bool = False

    # Switches that ``update`` accepts by name: booleans, then byte counts.
    FLAGS = (
        "protected_api_approved",
        "strict_immutable_ids",
        "enforce_delegated_scopes",
        "request_size_limit",
        "list_write_shape",
        "evolvable_enums",
    )
    NUMBERS = ("max_message_size",)

    def update(self, values: dict[str, Any]) -> None:
        """Set the switches named in ``values``; raises ValueError for an unknown name."""
        for name, value in values.items():
            if name in self.FLAGS:
                setattr(self, name, bool(value))
            elif name in self.NUMBERS:
                setattr(self, name, max(0, int(value)))
            else:
                known = (*self.FLAGS, *self.NUMBERS)
                raise ValueError(f"unknown switch {name!r}; expected one of {known}")

    def flags(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*self.FLAGS, *self.NUMBERS)}


class Tenant:
    def __init__(
        self,
        *,
        store: Store,
        content: ContentStore,
        tokens: StateTokens,
        tenant_id: str,
        domain: str,
        sharepoint_host: str,
        settings: IdentitySettings,
    ) -> None:
        self.store = store
        self.content = content
        self.tokens = tokens
        self.tenant_id = tenant_id
        self.domain = domain
        self.sharepoint_host = sharepoint_host
        self.settings = settings
        self.switches = Switches()
        self._lock = threading.Lock()
        self._users: dict[str, str] = {}
        self._user_items: dict[str, Item] = {}
        self.uploads: dict[str, Any] = {}  # upload sessions by id (uploads.py)
        self.uploads_lock = threading.Lock()
        # Generates a lazy user's content on first access (lazyusers.py); None: eager.
        self.materialize: Callable[[Item], Item] | None = None

    # -- users ------------------------------------------------------------------------

    def _load_users(self) -> None:
        users: dict[str, str] = {}
        for item in self.store.iter_live(["user"]):
            users[item.key.lower()] = item.key
            users[str(item.data.get("userPrincipalName", "")).lower()] = item.key
            if item.data.get("mail"):
                users[str(item.data["mail"]).lower()] = item.key
        self._users = users

    def invalidate_users(self) -> None:
        with self._lock:
            self._users = {}
            self._user_items = {}

    def user(self, id_or_upn: str) -> Item | None:
        """The live user by object id, UPN or primary SMTP address (case-insensitive).

        User objects are cached (they change only through the generator); treat the
        returned item as read-only."""
        with self._lock:
            if not self._users:
                self._load_users()
            key = self._users.get(id_or_upn.lower())
            if key is None:
                return None
            item = self._user_items.get(key)
        if item is None:
            item = self.store.get(key)
            if item is not None:
                with self._lock:
                    self._user_items[key] = item
        return item

    def user_dict(self, id_or_upn: str) -> dict[str, Any] | None:
        item = self.user(id_or_upn)
        return item.data if item else None

    def require_user(self, id_or_upn: str) -> Item:
        item = self.user(id_or_upn)
        if item is None:
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{id_or_upn}' does not exist or one of its queried reference-property"
                " objects are not present.",
            )
        return item

    def require_content(self, user: Item) -> Item:
        """`user` with its content generated (a lazy tenant's first access; idempotent)."""
        if self.materialize is None or not user.data.get("_lazy"):
            return user
        item = self.materialize(user)
        with self._lock:
            self._user_items[item.key] = item
        return item

    def require_mailbox(self, id_or_upn: str) -> Item:
        """The user, if it has an Exchange Online mailbox the app may use."""
        user = self.require_content(self.require_user(id_or_upn))
        if not user.data.get("_mailbox") or user.key in self.switches.unlicensed:
            raise GraphError(
                404,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )
        return user

    # -- ids and time -------------------------------------------------------------------

    @staticmethod
    def new_outlook_id(prefix: str = "AAMkA") -> str:
        raw = base64.urlsafe_b64encode(secrets.token_bytes(45)).decode().rstrip("=")
        return prefix + raw

    @staticmethod
    def new_drive_item_id() -> str:
        return "01" + base64.b32encode(secrets.token_bytes(20)).decode()[:32]

    @staticmethod
    def new_guid() -> str:
        return str(uuid.uuid4())

    @staticmethod
    def change_key() -> str:
        return base64.b64encode(secrets.token_bytes(21)).decode()

    @staticmethod
    def now() -> str:
        return iso(utc_now())

    # -- delta token epochs -------------------------------------------------------------

    def epoch(self, service: str) -> int:
        return int(self.store.get_meta(f"epoch:{service}") or 0)

    def expire_delta_tokens(self, services: list[str] | None = None) -> list[str]:
        """Invalidate every delta/skip token of `services` (all by default)."""
        chosen = services or list(DELTA_SERVICES)
        with self.store.transaction() as tx:
            for s in chosen:
                if s not in DELTA_SERVICES:
                    raise ValueError(f"unknown service {s!r}; expected one of {DELTA_SERVICES}")
                tx.set_meta(f"epoch:{s}", str(self.epoch(s) + 1))
        return chosen

    # -- pre-authenticated download URLs -----------------------------------------------------

    def download_url(self, base_url: str, item: Item, version: str | None = None) -> str:
        payload = {
            "k": item.key,
            "v": version,
            "s": item.seq,
            "exp": int(time.time()) + self.settings.download_url_lifetime,
        }
        return f"{base_url}/_dl/{self.tokens.encode(payload)}"

    def read_download_token(self, token: str) -> dict[str, Any]:
        """Decode a download token; raises GraphError 401 when invalid or expired."""
        try:
            payload = self.tokens.decode(token)
        except TokenError:
            raise GraphError(401, "unauthenticated", "The download URL is not valid.") from None
        if float(payload.get("exp", 0)) < time.time():
            raise GraphError(401, "unauthenticated", "The download URL has expired.")
        return payload

    def set_settings(self, **changes: Any) -> IdentitySettings:
        self.settings = replace(self.settings, **changes)
        return self.settings


def stable_id(*parts: object, length: int = 32) -> str:
    """A deterministic base32 id from parts (generator ids)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return base64.b32encode(digest).decode()[:length]
