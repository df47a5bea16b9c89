"""Simulator settings: tenant scale, throttling policy, identity lifetimes.

Every limit here cites the Microsoft page it comes from (see docs/simulator.md).
`ThrottlePolicy.scale` multiplies both the request budget and the window of every rate
limit, which keeps Microsoft's documented *rates* while making bursts hit the limit (and
recover) quickly in tests. The Outlook concurrency limit (4 requests per app per mailbox)
is never scaled or disabled: it is what clients must respect.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Scale = Literal["tiny", "small", "medium", "large"]


@dataclass(frozen=True)
class RateLimit:
    """At most `requests` units per sliding `window` seconds."""

    requests: float
    window: float

    def scaled(self, factor: float) -> RateLimit:
        return RateLimit(max(1.0, self.requests * factor), max(0.05, self.window * factor))


@dataclass(frozen=True)
class ThrottlePolicy:
    """Throttling like Microsoft's.

    - Outlook (concepts/throttling-limits.md, "Outlook service limits"): per app and
      mailbox, 10,000 requests per 10 minutes, 150 MB of uploads per 5 minutes, and at most
      4 concurrent requests (the 5th gets 429 "Application is over its MailboxConcurrency
      limit").
    - SharePoint and OneDrive ("Avoid getting throttled or blocked in SharePoint Online"):
      resource units per app per tenant, 1,200 per minute for tenants of up to 1,000
      licenses; 1 unit per single-item request, delta with a token or download, 2 per
      collection, delta without token or write, 5 for permissions.
    - Teams (throttling-limits.md, "Microsoft Teams service limits"): GET channel message
      20 requests per second per app per tenant, at most 4 per second on a given team or
      channel.
    - Global: 130,000 requests per 10 seconds per app.
    """

    enabled: bool = True
    scale: float = 1.0
    mailbox_concurrency: int = 4
    outlook_requests: RateLimit = RateLimit(10_000, 600)
    outlook_upload_bytes: RateLimit = RateLimit(150_000_000, 300)
    sharepoint_units: RateLimit = RateLimit(1_200, 60)
    teams_messages: RateLimit = RateLimit(20, 1)
    teams_per_channel: RateLimit = RateLimit(4, 1)
    global_requests: RateLimit = RateLimit(130_000, 10)

    def effective(self) -> ThrottlePolicy:
        """The policy with `scale` applied to every rate limit (not to concurrency)."""
        if self.scale == 1.0:
            return self
        f = self.scale
        return replace(
            self,
            scale=1.0,
            outlook_requests=self.outlook_requests.scaled(f),
            outlook_upload_bytes=self.outlook_upload_bytes.scaled(f),
            sharepoint_units=self.sharepoint_units.scaled(f),
            teams_messages=self.teams_messages.scaled(f),
            teams_per_channel=self.teams_per_channel.scaled(f),
            global_requests=self.global_requests.scaled(f),
        )


def throttle_policy(value: bool | float | ThrottlePolicy | None) -> ThrottlePolicy:
    """Normalise the constructor's `throttling` argument.

    True/None: Microsoft's limits; False: rate limits off (concurrency still enforced);
    a float: the scale factor; a ThrottlePolicy: as given.
    """
    if isinstance(value, ThrottlePolicy):
        return value
    if value is None or value is True:
        return ThrottlePolicy()
    if value is False:
        return ThrottlePolicy(enabled=False)
    return ThrottlePolicy(scale=float(value))


@dataclass(frozen=True)
class IdentitySettings:
    """Lifetimes of the identity platform (v2-oauth2-client-creds-grant-flow.md shows
    `expires_in: 3599`; v2-oauth2-device-code.md: device codes live 15 minutes, and the
    client polls every `interval` seconds)."""

    token_lifetime: int = 3599
    device_code_lifetime: int = 900
    device_code_interval: int = 5
    download_url_lifetime: int = 600  # driveitem-get-content.md: "a few minutes"
    upload_session_lifetime: int = 3600


@dataclass(frozen=True)
class ScaleProfile:
    """How much the generator creates per user, site and team."""

    users: int
    folders_per_user: int
    messages_per_user: int
    contacts_per_user: int
    events_per_user: int
    files_per_user: int
    big_files: tuple[int, ...]  # sizes of the few very large files, spread over drives
    big_attachment: int  # size of the largest attachment (a few such messages)
    sites: int
    files_per_site: int
    list_items_per_site: int
    teams: int
    channels_per_team: int
    posts_per_channel: int
    max_file: int  # ceiling for ordinary files (sizes are spread on a log scale)
    max_attachment: int = 1_500_000  # ceiling for ordinary attachments


SCALES: dict[str, ScaleProfile] = {
    # Many users with little each: scale-out tests and benchmarks (thousands of
    # owners whose run time is round trips, not bytes). Use with --users N.
    "tiny": ScaleProfile(
        users=100,
        folders_per_user=1,
        messages_per_user=3,
        contacts_per_user=1,
        events_per_user=1,
        files_per_user=2,
        big_files=(),
        big_attachment=200_000,
        sites=1,
        files_per_site=2,
        list_items_per_site=2,
        teams=1,
        channels_per_team=1,
        posts_per_channel=2,
        max_file=64 * 1024,
        max_attachment=64 * 1024,
    ),
    "small": ScaleProfile(
        users=3,
        folders_per_user=3,
        messages_per_user=14,
        contacts_per_user=6,
        events_per_user=7,
        files_per_user=14,
        big_files=(6 * 1024 * 1024 + 12345,),
        big_attachment=3 * 1024 * 1024 + 500_000,
        sites=2,
        files_per_site=6,
        list_items_per_site=8,
        teams=2,
        channels_per_team=2,
        posts_per_channel=4,
        max_file=1024 * 1024,
    ),
    "medium": ScaleProfile(
        users=10,
        folders_per_user=8,
        messages_per_user=300,
        contacts_per_user=60,
        events_per_user=60,
        files_per_user=150,
        big_files=(120 * 1024 * 1024, 200 * 1024 * 1024 + 7),
        big_attachment=25 * 1024 * 1024,
        sites=4,
        files_per_site=120,
        list_items_per_site=100,
        teams=3,
        channels_per_team=3,
        posts_per_channel=40,
        max_file=8 * 1024 * 1024,
    ),
    "large": ScaleProfile(
        users=50,
        folders_per_user=12,
        messages_per_user=1300,
        contacts_per_user=120,
        events_per_user=120,
        files_per_user=420,
        big_files=(300 * 1024 * 1024, 400 * 1024 * 1024 + 3, 512 * 1024 * 1024 - 1),
        big_attachment=30 * 1024 * 1024,
        sites=8,
        files_per_site=500,
        list_items_per_site=400,
        teams=6,
        channels_per_team=4,
        posts_per_channel=120,
        # About 170k items and 8 GB of content: enough for benchmarks, not more.
        max_file=2 * 1024 * 1024,
        max_attachment=300_000,
    ),
}
