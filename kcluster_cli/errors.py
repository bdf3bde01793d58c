"""Errors an operator can act on: each says what went wrong and what to do."""

from __future__ import annotations


class OperatorError(Exception):
    """Printed as `kcluster: <message>` with exit status 1; never a traceback."""

    exit_code = 1
