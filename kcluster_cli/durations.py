"""Durations as operators type them (`90s`, `5m`, `1h30m`, `2d`) and ages as kubectl prints them."""

from __future__ import annotations

import argparse
import re

_PART = re.compile(r"([0-9]+)(d|h|m|s)")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> float:
    """Seconds in `text`; argparse shows the ValueError's message when it does not parse."""
    parts = _PART.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: write it as 30s, 5m, 1h30m or 2d")
    return float(sum(int(number) * _SECONDS[unit] for number, unit in parts))


def age(seconds: float | None) -> str:
    """kubectl's AGE: the largest unit that fits, with a second unit below ten of it."""
    if seconds is None:
        return "<unknown>"
    whole = max(0, int(seconds))
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h{minutes % 60}m" if hours < 8 and minutes % 60 else f"{hours}h"
    return f"{hours // 24}d"
