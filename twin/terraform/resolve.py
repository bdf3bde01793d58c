"""Values Terraform did not know at plan time, replaced by what AWS (moto) gave them.

The module is applied once through the schema-serving provider (twin/terraform/plan.py): every value
unknown at plan time (an id, an ARN, a DNS name, a generated name) then has a stand-in, and every
expression built from it (the cluster config's endpoint, a key policy naming the node roles) was
evaluated by Terraform with that stand-in. The twin creates each resource in moto and learns what moto
named it; from then on each stand-in is replaced by the real value wherever it appears.

Resources are created in the order of the references Terraform recorded, so a value is normally known
before it is used. A stand-in can still be met early when a literal merely equals it (a policy naming
the config parameter's ARN by its path, not through the resource): it is kept, and `verify` fails the
deploy if AWS then named that value differently (or never named it), so nothing is passed on wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# Shorter stand-ins (numbers as text, "true") could match by accident; none of the provider's ids is.
_MIN_LENGTH = 8


class UnresolvedValue(LookupError):
    pass


class Resolver:
    def __init__(self, stand_ins: Iterable[str]) -> None:
        self.stand_ins = {value for value in stand_ins if len(value) >= _MIN_LENGTH}
        self.known: dict[str, str] = {}
        self.confirmed: set[str] = set()
        self.early: list[tuple[str, str]] = []  # (where, stand-in) met before AWS named it
        self._pattern: re.Pattern[str] | None = None

    def learn(self, stand_in: Any, real: Any) -> None:
        """`real` is what AWS gave the value Terraform's apply named `stand_in`."""
        if stand_in not in self.stand_ins:
            return
        if stand_in == str(real):
            self.confirmed.add(stand_in)
        else:
            self.known[stand_in] = str(real)

    def learn_read(self, planned: Any, real: Any) -> None:
        """What the plan read (the provider's fixture or answer) and what the twin's world holds: the
        operator's network, a data source's answer. From here on it is a stand-in too."""
        if isinstance(planned, str) and len(planned) >= _MIN_LENGTH and planned != str(real):
            self.stand_ins.add(planned)
            self._pattern = None
            self.known[planned] = str(real)

    def resolve(self, value: Any, where: str) -> Any:
        """`value` with every stand-in AWS has named replaced (the others are kept and noted for `verify`)."""
        pattern = self._compiled()
        if pattern is None:
            return value

        def real(match: re.Match[str]) -> str:
            if match.group() not in self.known:
                self.early.append((where, match.group()))
                return match.group()
            return self.known[match.group()]

        def walk(item: Any) -> Any:
            if isinstance(item, str):
                return pattern.sub(real, item)
            if isinstance(item, list):
                return [walk(element) for element in item]
            if isinstance(item, dict):
                return {key: walk(element) for key, element in item.items()}
            return item

        return walk(value)

    def verify(self) -> None:
        """Every stand-in used before AWS named it turned out to be AWS's value."""
        for where, stand_in in self.early:
            if stand_in in self.known:
                raise UnresolvedValue(
                    f"{where} was created with {stand_in!r}, which AWS then named {self.known[stand_in]!r}"
                )
            if stand_in not in self.confirmed:
                raise UnresolvedValue(f"{where} was created with {stand_in!r}, which AWS never named")

    def _compiled(self) -> re.Pattern[str] | None:
        if self._pattern is None and self.stand_ins:
            # Longest first: an ARN is replaced whole before the id inside it could match.
            alternatives = sorted(self.stand_ins, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, alternatives)))
        return self._pattern
