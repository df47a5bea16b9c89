"""The write shape of SharePoint list item fields (switch ``list_write_shape``).

Graph reads rich columns in one shape and accepts writes in another (Corso issue
5108, "Handle multiple values for list items for a column", with the request
bodies that work; msgraph-sdk-powershell issue 839: a multi-choice value sent as
a bare array is 400 "Invalid request"):

- person or lookup, one value: read ``"<F>LookupId": "10"``, written as the number;
- person or lookup, several: read ``"<F>": [{"LookupId", "LookupValue", "Email"}]``,
  written ``"<F>LookupId@odata.type": "Collection(Edm.Int32)", "<F>LookupId": [10, 14]``;
- choice, several: read ``"<F>": ["a", "b"]``, written with
  ``"<F>@odata.type": "Collection(Edm.String)"`` beside the array;
- hyperlink, managed metadata: read as objects (``{"Description", "Url"}``,
  ``{"Label", "TermGuid", "WssId"}``), not writable as objects.

With the switch on, a write with an object value, or with an array lacking its
``@odata.type`` annotation, is refused with 400 ``invalidRequest``; an accepted
write is stored in the read shape. A multi-valued lookup's LookupValue and Email
come from the lookup list (for people, the site's User Information List), which
the simulator does not keep: it takes those any item of the list, deleted ones
included, showed for that LookupId, else leaves them empty.
"""

from __future__ import annotations

from typing import Any

from ..httpcore import GraphError
from ..store import Item
from ..tenant import Tenant

ANNOTATION = "@odata.type"


def _invalid(name: str) -> GraphError:
    return GraphError(400, "invalidRequest", f"Invalid request: field '{name}'.")


def _known_lookups(t: Tenant, lst: Item) -> dict[int, dict[str, Any]]:
    """LookupId -> the lookup object items of the list (deleted ones too) showed for it."""
    found: dict[int, dict[str, Any]] = {}
    rows = t.store.changes(
        lst.key,
        ["listItem"],
        since=0,
        upto=t.store.current_seq,
        after_seq=0,
        limit=-1,
        include_deleted=True,
    )
    for row in rows:
        for value in (row.data.get("_fields") or {}).values():
            if not isinstance(value, list):
                continue
            for entry in value:
                if isinstance(entry, dict) and "LookupId" in entry:
                    try:
                        found.setdefault(int(entry["LookupId"]), dict(entry))
                    except (TypeError, ValueError):
                        continue
    return found


def accept_write(t: Tenant, lst: Item, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` of a create or update, checked for the write shape and returned in
    the read shape to store. Raises GraphError 400 for a value in the read shape."""
    annotations = {
        k[: -len(ANNOTATION)]: str(v) for k, v in fields.items() if k.endswith(ANNOTATION)
    }
    out: dict[str, Any] = {}
    lookups: dict[int, dict[str, Any]] | None = None
    for name, value in fields.items():
        if name.endswith(ANNOTATION):
            continue
        if isinstance(value, dict):
            raise _invalid(name)
        if isinstance(value, list):
            kind = annotations.get(name)
            if kind is None:
                raise _invalid(name)
            if name.endswith("LookupId") and kind == "Collection(Edm.Int32)":
                if lookups is None:
                    lookups = _known_lookups(t, lst)
                entries = []
                for raw in value:
                    try:
                        lid = int(raw)
                    except (TypeError, ValueError):
                        raise _invalid(name) from None
                    known = lookups.get(lid, {})
                    entries.append(
                        {
                            "LookupId": lid,
                            "LookupValue": known.get("LookupValue", ""),
                            **({"Email": known["Email"]} if "Email" in known else {}),
                        }
                    )
                out[name[: -len("LookupId")]] = entries
                continue
            out[name] = list(value)
            continue
        if name.endswith("LookupId") and value is not None:
            out[name] = str(value)
            continue
        out[name] = value
    return out
