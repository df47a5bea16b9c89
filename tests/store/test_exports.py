"""The package API: every exported name resolves to the object it names.

store/__init__.py re-exports them from its sub-packages. Importing a
sub-package sets the package attribute of its name, so no exported name may be
a sub-package's name.
"""

from __future__ import annotations

import importlib
import pkgutil
import types

import store


def test_no_export_shares_a_name_with_a_submodule() -> None:
    submodules = {info.name for info in pkgutil.iter_modules(store.__path__)}
    assert not submodules & set(store.__all__)


def test_every_export_is_the_object_not_a_module() -> None:
    # Every engine module (the backends' SDK modules are the backends' business).
    for info in pkgutil.walk_packages(store.__path__, "store."):
        if not info.name.startswith("store.backend."):
            importlib.import_module(info.name)
    for name in store.__all__:
        value = getattr(store, name)
        assert not isinstance(value, types.ModuleType), name
