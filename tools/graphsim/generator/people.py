"""The people of a generated tenant (shared by the mailbox, contact and calendar parts)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Person:
    id: str
    name: str
    address: str
