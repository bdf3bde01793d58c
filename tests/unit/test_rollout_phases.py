"""The rollout's state machine (core/phases.py): the table itself, and that the record enforces it."""

from __future__ import annotations

import pytest

from kcluster.core.phases import (
    ALL_ROLLOUT_PHASES,
    ROLLOUT_ACTIVE_PHASES,
    ROLLOUT_FINISHED_PHASES,
    ROLLOUT_INITIAL_PHASES,
    ROLLOUT_TRANSITIONS,
    IllegalTransition,
)
from kcluster.core.rollout_model import RolloutState, Target
from kcluster.core.version_skew import KubeVersion

from .test_phases import reachable

TARGET = Target(KubeVersion(1, 38, 0), ())


def test_the_rollout_table_names_every_phase_and_only_phases():
    assert set(ROLLOUT_TRANSITIONS) == ALL_ROLLOUT_PHASES
    assert set().union(*ROLLOUT_TRANSITIONS.values()) <= ALL_ROLLOUT_PHASES
    assert all(phase not in after for phase, after in ROLLOUT_TRANSITIONS.items())


def test_every_rollout_phase_is_reachable_and_every_one_can_end():
    assert reachable(ROLLOUT_TRANSITIONS, ROLLOUT_INITIAL_PHASES) == ALL_ROLLOUT_PHASES
    for phase in ALL_ROLLOUT_PHASES - ROLLOUT_FINISHED_PHASES:
        assert reachable(ROLLOUT_TRANSITIONS, {phase}) & ROLLOUT_FINISHED_PHASES, phase


def test_a_finished_rollout_only_starts_anew_and_nothing_changes_the_cluster_before_the_preflight():
    for phase in ROLLOUT_FINISHED_PHASES:
        assert ROLLOUT_TRANSITIONS[phase] == {"pending"}
    # pending (the preflight) is the only way in; the go is given from waiting_for_go, never skipped to
    entries = {p for p, after in ROLLOUT_TRANSITIONS.items() if after & ROLLOUT_ACTIVE_PHASES}
    assert entries - ROLLOUT_ACTIVE_PHASES == {"pending", "waiting_for_go", "paused"}


def test_control_planes_come_before_workers_and_addons_after_the_control_planes():
    one_pass = {
        **ROLLOUT_TRANSITIONS,
        **{p: frozenset() for p in ROLLOUT_FINISHED_PHASES},
        "paused": frozenset(),
    }
    assert "control_planes" not in reachable(one_pass, {"workers"})
    assert "preparing" not in reachable(one_pass, {"control_planes"})
    assert [p for p, after in ROLLOUT_TRANSITIONS.items() if "addons" in after] == [
        "control_planes",
        "paused",
    ]


def test_an_illegal_rollout_move_fails_loudly():
    rollout = RolloutState("demo").begin(TARGET, 1.0)
    assert (rollout.phase, rollout.version, rollout.target) == ("pending", 1, TARGET.key)
    with pytest.raises(IllegalTransition, match="pending -> addons"):
        rollout.moved(2.0, phase="addons")
    with pytest.raises(IllegalTransition, match="new record"):
        RolloutState("demo", phase="workers").moved(2.0)
    running = rollout.started("workers", None, False, 3.0)
    with pytest.raises(IllegalTransition, match="workers -> pending"):
        running.begin(TARGET, 4.0)  # a rollout in flight is never restarted under itself


def test_pause_remembers_where_and_resume_goes_back_there():
    running = RolloutState("demo").begin(TARGET, 1.0).started("control_planes", None, False, 2.0)
    paused = running.pause(3.0)
    assert (paused.phase, paused.paused_from) == ("paused", "control_planes")
    resumed = paused.resume(4.0)
    assert (resumed.phase, resumed.paused_from) == ("control_planes", None)
    done = resumed.moved(5.0, phase="succeeded")
    again = done.begin(TARGET, 6.0)
    assert (again.phase, again.version, again.started_at) == ("pending", done.version + 1, None)
