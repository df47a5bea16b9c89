"""The package API: every exported name resolves to the object it names.

Names are exported lazily (store/__init__.py). Importing a submodule sets the
package attribute of its name, so no exported name may be a submodule's name.
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
    for info in pkgutil.iter_modules(store.__path__, "store."):
        importlib.import_module(info.name)
    for name in store.__all__:
        value = getattr(store, name)
        assert not isinstance(value, types.ModuleType), name
