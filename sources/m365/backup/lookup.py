"""One owner by its Graph ID: what discovery found, fetched again on another machine.

A scale-out job (cli/cluster) carries only an owner's kind, ID, name and
services; the worker that runs it reads the owner's directory object itself,
with the same ``$select`` discovery uses, so the snapshot holds what a
one-process run would have stored. Raises what GraphClient.get_json raises
(an owner deleted since discovery answers ItemGone).
"""

from __future__ import annotations

from typing import Any

from sources.m365.backup.context import OwnerJob
from sources.m365.backup.discovery import USER_SELECT
from sources.m365.graph.client import GraphClient
from sources.m365.graph.throttle import Resource

GROUP_SELECT = "id,displayName,mail,groupTypes,resourceProvisioningOptions"


def owner_job(
    client: GraphClient, kind: str, key: str, name: str, services: tuple[str, ...]
) -> OwnerJob:
    """The OwnerJob discovery would have made for this owner."""
    graph: dict[str, Any]
    if kind == "users":
        graph = client.get_json(
            f"/users/{key}", Resource.directory(), params={"$select": USER_SELECT}
        )
    elif kind == "groups":
        graph = client.get_json(
            f"/groups/{key}", Resource.directory(), params={"$select": GROUP_SELECT}
        )
    elif kind == "sites":
        graph = client.get_json(f"/sites/{key}", Resource.sharepoint())
    else:
        # The teams service reads /teams/{id} itself; the listing's fields are a
        # fallback it uses only when that read is refused.
        graph = {"id": key, "displayName": name.rsplit(" [", 1)[0]}
    return OwnerJob(kind, key, name, services, graph)
