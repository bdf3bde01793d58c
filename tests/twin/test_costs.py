"""DynamoDB item sizes as the bench counts them (DynamoDB's rules: names plus values)."""

from __future__ import annotations

from twin.costs import item_size


def test_strings_and_names_count_their_utf8_bytes() -> None:
    assert item_size({"pk": {"S": "CLUSTER#demo"}}) == 2 + 12
    assert item_size({"név": {"S": "ü"}}) == 4 + 2


def test_numbers_count_about_one_byte_per_two_significant_digits() -> None:
    assert item_size({"n": {"N": "7"}}) == 1 + 2
    assert item_size({"n": {"N": "1767225600"}}) == 1 + 5  # trailing zeros are not significant
    assert item_size({"n": {"N": "1767225600.125"}}) == 1 + 8


def test_lists_maps_and_scalars() -> None:
    assert item_size({"b": {"BOOL": True}, "z": {"NULL": True}}) == 2 + 2
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}) == 1 + 3 + (1 + 2) + (1 + 2)
    assert item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + (1 + 1 + 1)
    assert item_size({"s": {"SS": ["a", "bc"]}}) == 1 + 3
