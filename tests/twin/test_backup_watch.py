"""The twin's own backup-age check (twin/backup_watch.py), behind the `backups_fresh` invariant."""

from __future__ import annotations

from twin.backup_watch import BackupWatch, oldest_while_healthy


def test_samples_a_minute_apart_make_one_healthy_stretch_and_a_long_silence_starts_another():
    watch = BackupWatch()
    for now in (100.0, 160.0, 220.0, 1000.0, 1060.0):
        watch.saw_healthy(now)
    assert watch.healthy == [[100.0, 220.0], [1000.0, 1060.0]]


def test_the_age_is_measured_just_before_each_backup_and_at_the_end_of_each_stretch():
    # GIVEN one healthy stretch from t=0 to t=3000 with good backups at 100, 1000 and 2800
    # THEN the worst moment is just before the 2800 one: 1800 s after the 1000 one
    assert oldest_while_healthy([[0.0, 3000.0]], [100.0, 1000.0, 2800.0]) == (1800.0, 2800.0)
    # AND with no backup after 1000 the end of the stretch is the worst moment
    assert oldest_while_healthy([[0.0, 3000.0]], [100.0, 1000.0]) == (2000.0, 3000.0)


def test_a_stretch_counts_from_its_own_start_not_from_a_backup_before_an_outage():
    # GIVEN a backup at 50, an outage from 200 to 5000, a backup 300 s into the next healthy stretch
    stretches = [[0.0, 200.0], [5000.0, 6000.0]]
    # THEN the outage is not counted against the cluster: the worst is the 700 s from 5300 to its end
    assert oldest_while_healthy(stretches, [50.0, 5300.0]) == (700.0, 6000.0)
    # AND a cluster never healthy has nothing to say
    assert oldest_while_healthy([], [50.0]) == (0.0, None)
