"""Replacing methods on moto's classes for the length of one twin, and putting them back.

Each emulation (lifecycle hooks, Run Command, instance refresh) serves its calls by replacing moto's
methods; `undo` restores what was there, in reverse order, deleting what moto itself did not define.
"""

from __future__ import annotations

from typing import Any


class MethodPatches:
    def __init__(self) -> None:
        self._originals: list[tuple[type, str, Any]] = []

    def patch(self, cls: type, name: str, replacement: Any) -> None:
        self._originals.append((cls, name, cls.__dict__.get(name)))
        setattr(cls, name, replacement)

    def undo(self) -> None:
        for cls, name, original in reversed(self._originals):
            if original is None:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
        self._originals.clear()
