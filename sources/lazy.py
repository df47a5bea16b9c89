"""Names a package resolves on first use (PEP 562), so that importing the package
does not import what only some commands need (msal, requests, the web stack)."""

from __future__ import annotations

import importlib
from typing import Any


def resolve(package: str, table: dict[str, str], namespace: dict[str, Any], name: str) -> Any:
    """The value of ``name`` from the module ``table`` maps it to, imported now and
    kept in ``namespace`` (the package's globals: the next lookup finds it there).
    Raises AttributeError for a name the table does not have, as a module does."""
    module = table.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    namespace[name] = value
    return value
