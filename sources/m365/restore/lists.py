"""Restoring SharePoint list items: each recreated from its fields (listitem-create.md).

The target list is the item's own list (by the ID kept in the snapshot, else
by its display name) for ``--to original``, or the list with the same
display name in the target site. Graph can create lists, but not with
columns Coffer never backed up: a missing list is a failure with its reason
(create the list with the same columns, then run the restore again).

The fields sent are the item's own: SharePoint's read-only and computed
fields (ID, Created, Modified, Author, Editor, content type, version, link
and icon fields, anything starting with ``_`` or ``@``) are left out.

Rich columns are read in one shape and written in another (Corso issue 5108):
Graph refuses the read shape with 400, so :func:`write_shape` converts each
field. A person or lookup column with one value is read as
``<F>LookupId: "10"`` and written as the number; with several, it is read as
``<F>: [{"LookupId", "LookupValue", "Email"}]`` and written as
``<F>LookupId: [10, 14]`` with ``<F>LookupId@odata.type:
Collection(Edm.Int32)``; a multi-choice column's array gets
``<F>@odata.type: Collection(Edm.String)``; a single lookup's display value
(``<F>`` beside ``<F>LookupId``) is not sent. Hyperlink and managed metadata
values are objects Graph cannot write through list item fields: they are left
out, and the report names them (their values stay in the snapshot).
An item is already there when an item of the list has the same values for
every field sent; another version when the item with its own ID is there
with others (replace: its fields are set to the snapshot's with a PATCH,
which keeps its ID; fields it has beyond the snapshot's are cleared).
"""

from __future__ import annotations

import threading
from typing import Any

from sources.m365.graph.errors import ItemGone
from sources.m365.restore.common import (
    KEEP_BOTH,
    REPLACE,
    FolderIndex,
    FolderIndexes,
    ServiceRun,
    by_graph_id,
    meaningful,
    same_values,
)
from sources.m365.restore.items import SnapItem, folder_name, read_json

READ_ONLY = {
    "id",
    "ID",
    "ContentType",
    "ContentTypeId",
    "Created",
    "Modified",
    "Author",
    "Editor",
    "AuthorLookupId",
    "EditorLookupId",
    "AppAuthor",
    "AppEditor",
    "AppAuthorLookupId",
    "AppEditorLookupId",
    "Attachments",
    "Edit",
    "LinkTitle",
    "LinkTitleNoMenu",
    "DocIcon",
    "ItemChildCount",
    "FolderChildCount",
    "FileLeafRef",
    "FileRef",
    "FileDirRef",
    "FSObjType",
    "GUID",
    "UniqueId",
    "owshiddenversion",
    "WorkflowVersion",
    "SMTotalSize",
    "SMLastModifiedDate",
    "SMTotalFileStreamSize",
    "SMTotalFileCount",
}


ANNOTATION = "@odata.type"


def writable_fields(item: dict[str, Any]) -> dict[str, Any]:
    """The item's own fields, in the shape Graph reads them."""
    fields = item.get("fields") or {}
    return {
        str(k): v
        for k, v in fields.items()
        if k not in READ_ONLY and not str(k).startswith(("_", "@")) and meaningful(v)
    }


def _collection_type(values: list[Any]) -> str | None:
    if all(isinstance(v, str) for v in values):
        return "Collection(Edm.String)"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "Collection(Edm.Int32)"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "Collection(Edm.Double)"
    return None


def write_shape(fields: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(fields in Graph's write shape, names of fields Graph cannot write); see the
    module docstring. Pure."""
    out: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in fields.items():
        if (
            isinstance(value, list)
            and value
            and all(isinstance(v, dict) and "LookupId" in v for v in value)
        ):
            ids = []
            for entry in value:
                try:
                    ids.append(int(entry["LookupId"]))
                except (TypeError, ValueError):
                    ids = []
                    break
            if not ids:
                dropped.append(name)
                continue
            out[f"{name}LookupId{ANNOTATION}"] = "Collection(Edm.Int32)"
            out[f"{name}LookupId"] = ids
        elif isinstance(value, list):
            kind = _collection_type(value)
            if kind is None:
                dropped.append(name)
                continue
            out[f"{name}{ANNOTATION}"] = kind
            out[name] = list(value)
        elif isinstance(value, dict):
            dropped.append(name)  # hyperlink, managed metadata, location: not writable
        elif name.endswith("LookupId") and isinstance(value, str) and value.strip().isdigit():
            out[name] = int(value)
        elif f"{name}LookupId" in fields:
            continue  # a single lookup's display value: the ID is what is written
        else:
            out[name] = value
    return out, dropped


def _compared(fields: dict[str, Any]) -> dict[str, Any]:
    """What "the same item" compares: the written values, without annotations."""
    shaped, _dropped = write_shape(fields)
    return {k: v for k, v in shaped.items() if not k.endswith(ANNOTATION)}


def _normal(name: str, value: Any) -> Any:
    if not meaningful(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _row_fields(row: dict[str, Any]) -> dict[str, Any]:
    return dict(row.get("fields") or {})


def is_same(ours: dict[str, Any], row: dict[str, Any]) -> bool:
    theirs = _compared({k: v for k, v in _row_fields(row).items() if meaningful(v)})
    return same_values(_compared(writable_fields(ours)), theirs, _normal)


class ListItemKind:
    """How a list item is recognised in a target list (common.ItemKind): by its
    title (in ``fields``, for the snapshot's record and a listed row alike)."""

    def bucket(self, item: dict[str, Any]) -> str:
        return str(_row_fields(item).get("Title") or "").casefold()

    def identities(self, item: dict[str, Any]) -> list[str]:
        return by_graph_id(item)

    def same(self, ours: dict[str, Any], row: dict[str, Any]) -> bool:
        return is_same(ours, row)


class ListWriter:
    """Restores the list items of one site (see the module docstring)."""

    def __init__(self, run: ServiceRun) -> None:
        self.run = run
        self.site = str(run.placement.site_id)
        self._lists: dict[str, str | None] = {}
        self._indexes = FolderIndexes(ListItemKind())
        self._lock = threading.RLock()

    def list_id(self, item: SnapItem) -> str | None:
        folder = item.parents[1] if len(item.parents) > 1 else None
        name = folder_name(folder) if folder is not None else ""
        source_id = (folder.item_id or "").removeprefix("list:") if folder is not None else ""
        key = item.parent_paths[1] if len(item.parent_paths) > 1 else name
        with self._lock:
            if key in self._lists:
                return self._lists[key]
            found: str | None = None
            client, res = self.run.client, self.run.res
            if self.run.placement.original and source_id:
                try:
                    got = client.get_json(
                        f"/sites/{self.site}/lists/{source_id}", res, params={"$select": "id"}
                    )
                    found = str(got["id"])
                except ItemGone:
                    found = None
            if found is None:
                for lst in client.list_all(f"/sites/{self.site}/lists", res):
                    if str(lst.get("displayName", "")).casefold() == name.casefold():
                        found = str(lst["id"])
                        break
            self._lists[key] = found
            return found

    def index(self, lid: str) -> FolderIndex:
        return self._indexes.get(
            lid,
            lambda key: self.run.client.list_all(
                f"/sites/{self.site}/lists/{key}/items",
                self.run.res,
                params={"$expand": "fields", "$top": "999"},
            ),
        )

    def restore(self, item: SnapItem) -> None:
        run = self.run
        try:
            data = read_json(run.reader, item)
        except ValueError as exc:
            run.fail(item.path, f"the backed-up list item cannot be read: {exc}")
            return
        lid = self.list_id(item)
        if lid is None:
            name = item.folder_names[0] if item.folder_names else "?"
            run.fail(
                item.path,
                f"the target site has no list named {name!r} (create it with the same columns, "
                "then restore again)",
            )
            return
        index = self.index(lid)
        # Elsewhere than the original site, an item's Graph ID names nothing there.
        found, row = index.match(data, by_identity=run.placement.original)
        action = run.settle(item.path, found)
        if action is None:
            return
        fields, dropped = write_shape(writable_fields(data))
        if dropped:
            run.result.note(
                "list item fields Graph cannot write (hyperlink, managed metadata) were left "
                f"empty; their values are in the snapshot: {', '.join(sorted(set(dropped)))}"
            )
        if action == REPLACE and row is not None:
            patch = dict(fields)
            for key, value in _row_fields(row).items():
                if (
                    key not in patch
                    and key not in READ_ONLY
                    and not key.startswith(("_", "@"))
                    and meaningful(value)
                    and not isinstance(value, list | dict)
                    and f"{key}LookupId" not in patch
                ):
                    patch[key] = None
            run.client.send(
                "PATCH",
                f"/sites/{self.site}/lists/{lid}/items/{row['id']}/fields",
                run.res,
                json_body=patch,
                idempotent=True,
            )
            run.done("replaced", item.path)
            return
        url = f"/sites/{self.site}/lists/{lid}/items"
        known = index.ids()

        def find() -> dict[str, Any] | None:
            for candidate in run.client.list_all(
                url, run.res, params={"$expand": "fields", "$top": "999"}
            ):
                if str(candidate.get("id")) not in known and is_same(data, candidate):
                    return candidate
            return None

        made = run.create_once(
            lambda: run.client.send(
                "POST", url, run.res, json_body={"fields": fields}, idempotent=False
            ),
            find,
            "creating the list item",
        )
        index.add(made)
        run.done("kept_both" if action == KEEP_BOTH else "created", item.path)
