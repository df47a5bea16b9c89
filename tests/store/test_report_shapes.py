"""The typed reports keep the JSON they replaced (``--json`` output is an interface).

PruneResult and IndexRepair used to print ``dict(self.__dict__)``: every field,
in declaration order. Their TypedDicts spell the fields out; these tests fail
when a field is added to one and not the other, or the order changes.
"""

from __future__ import annotations

from dataclasses import fields
from typing import get_type_hints

from store import IndexRepair, PruneResult
from store.maintenance.prune.pruning import PruneReport
from store.maintenance.repair.index import IndexRepairJSON


def test_prune_json_is_every_field_in_order() -> None:
    names = [f.name for f in fields(PruneResult)]
    result = PruneResult(dry_run=True, marked=["a"], report="reports/prune/x")
    assert list(result.to_json()) == names
    assert list(get_type_hints(PruneReport)) == names
    assert result.to_json() == dict(result.__dict__)


def test_repair_index_json_is_every_field_then_the_lost_ids() -> None:
    names = [f.name for f in fields(IndexRepair)]
    repair = IndexRepair(lost_blobs={"bb": "gone", "aa": "damaged"}, packs_scanned=3)
    out = repair.to_json()
    assert list(out) == [*names, "lost_blob_ids"]
    assert list(get_type_hints(IndexRepairJSON)) == [*names, "lost_blob_ids"]
    assert out["lost_blobs"] == 2
    assert out["lost_blob_ids"] == ["aa", "bb"]
