"""`make demo`'s scenario: a cluster scaling out, in and healing, every invariant holding."""

from __future__ import annotations

import pytest

from twin.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def test_the_demo_scales_out_in_and_heals(capsys):
    # WHEN the demo runs as `make demo` runs it
    status = main(
        ["simulate", "--scenario", "demo", "--control-planes", "3", "--workers", "5", "--seed", "7"]
    )
    shown = capsys.readouterr().out
    # THEN it exits 0 with a timeline and a node table of 3 control planes and 3 workers, all Ready ...
    assert status == 0 and "FAIL" not in shown
    assert "TIMELINE" in shown and "fault: kubelet stops" in shown and "Terminating (unhealthy)" in shown
    table = shown.split("NAME", 1)[1].splitlines()[1:7]
    assert [row.split()[1:3] for row in table] == [["Ready", "control-plane"]] * 3 + [["Ready", "worker"]] * 3
    # ... having drained two workers scaled in, a control plane terminated by hand and the broken worker
    counters = dict(item.split("=") for item in shown.split("counters: ", 1)[1].splitlines()[0].split(", "))
    assert (counters["kubeadm_init"], counters["drains"], counters["etcd_members_removed"]) == ("1", "4", "1")
    assert (counters["remediations"], counters["notifications"]) == ("1", "0")
    # ... every AWS call authorized, and no statement of kcluster's own policies that nothing needs
    assert "denied; statements nothing needs: none (" in shown
    assert ", 0 denied;" in shown
