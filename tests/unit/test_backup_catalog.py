"""The bucket's backups from its listing alone (kcluster.core.backup_catalog): pure, no AWS."""

from __future__ import annotations

from kcluster.core.backup_catalog import Backup, catalog, newest_checked, taken_at

JAN_1 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def whole(tier: str, backup_id: str, size: int = 4128) -> list[dict]:
    prefix = f"{tier}/{backup_id}/"
    return [
        {"Key": prefix + "etcd.db", "Size": size},
        {"Key": prefix + "pki.tar", "Size": 10240},
        {"Key": prefix + "manifest.json", "Size": 700},
    ]


def test_backup_ids_name_the_utc_time_the_control_loop_asked_for_them() -> None:
    assert taken_at("20260101T000000Z") == JAN_1
    assert taken_at("20260101T001500Z") == JAN_1 + 900


def test_backups_come_newest_first_with_the_daily_copy_before_the_frequent_one_of_the_same_moment() -> None:
    objects = [
        *whole("frequent", "20260101T000000Z"),
        *whole("frequent", "20260101T001500Z", size=5152),
        *whole("daily", "20260101T000000Z"),
    ]

    found = catalog(objects)

    assert [b.key for b in found] == [
        "frequent/20260101T001500Z/",
        "daily/20260101T000000Z/",
        "frequent/20260101T000000Z/",
    ]
    assert (found[0].snapshot_size, found[0].taken_at, found[0].checked) == (5152, JAN_1 + 900, True)


def test_a_backup_without_its_manifest_is_not_checked_and_says_what_is_missing() -> None:
    # GIVEN the newest backup's upload stopped before the manifest (written last, after the checks)
    objects = [
        *whole("frequent", "20260101T000000Z"),
        {"Key": "frequent/20260101T001500Z/etcd.db", "Size": 9},
    ]

    found = catalog(objects)

    assert (found[0].checked, found[0].missing) == (False, ("pki.tar", "manifest.json"))
    # THEN the newest checked one is the older, whole backup
    assert newest_checked(found) == found[1]
    assert newest_checked(found[:1]) is None


def test_keys_of_any_other_shape_are_not_backups() -> None:
    objects = [
        {"Key": "frequent/2026-01-01/etcd.db", "Size": 1},
        {"Key": "hourly/20260101T000000Z/etcd.db", "Size": 1},
        {"Key": "frequent/20261301T000000Z/etcd.db", "Size": 1},  # month 13
        {"Key": "frequent/20260101T000000Z/nested/etcd.db", "Size": 1},
        {"Key": "README", "Size": 1},
    ]
    assert catalog(objects) == []


def test_the_json_view_of_a_backup() -> None:
    (backup,) = catalog(whole("daily", "20260101T000000Z"))
    assert isinstance(backup, Backup)
    assert backup.as_dict(JAN_1 + 3600) == {
        "key": "daily/20260101T000000Z/",
        "tier": "daily",
        "backup_id": "20260101T000000Z",
        "taken_at": "2026-01-01T00:00:00Z",
        "age_seconds": 3600,
        "size_bytes": 4128,
        "checked": True,
        "missing": [],
    }
