"""The package API: every exported name resolves, lazily imported ones included,
whatever submodules were imported first."""

from __future__ import annotations

import importlib
import pkgutil
import types

import store


def test_every_export_is_the_object_not_a_module() -> None:
    for info in pkgutil.walk_packages(store.__path__, "store."):
        importlib.import_module(info.name)
    for name in store.__all__:
        value = getattr(store, name)
        assert not isinstance(value, types.ModuleType), name
