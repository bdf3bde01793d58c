"""Scenarios the twin can run: what an operator (or the world) does, step by step.

Each scenario drives a Twin and returns it settled; twin.report computes the outcome from the world.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kcluster import contract
from twin.backup_watch import BackupWatch
from twin.report import QuorumWatch, build_report
from twin.rollout_watch import MinHealthyWatch, all_at_target, publish_launch_template
from twin.version_watch import SkewWatch
from twin.world import Twin

# A scenario fails loudly rather than report on a world that never settled.
SETTLE_LIMIT_SECONDS = 6 * 3600


class ScenarioError(RuntimeError):
    pass


@dataclass
class ScenarioResult:
    twin: Twin
    report: dict


def _settle(twin: Twin, what: str) -> None:
    if not twin.run_until_settled(limit_seconds=SETTLE_LIMIT_SECONDS):
        raise ScenarioError(f"the world did not settle after {what} (seed {twin.seed})")


def scale_out(twin: Twin, control_planes: int, workers: int) -> None:
    """Raise both groups' desired capacity at once and wait for every node to join."""
    twin.set_desired(contract.ROLE_CONTROL_PLANE, control_planes)
    twin.set_desired(contract.ROLE_WORKER, workers)
    _settle(twin, "scale-out")


def scale_in(twin: Twin, control_planes: int, workers: int) -> None:
    """Scale out, then at once: workers down to 2 and one control plane terminated by hand (the ASG
    replaces it). Every leaving node is drained and removed before EC2 takes it."""
    scale_out(twin, control_planes, workers)
    twin.set_desired(contract.ROLE_WORKER, min(2, workers))
    control_planes_now = [
        i["instance_id"] for i in twin.instances() if i["role"] == contract.ROLE_CONTROL_PLANE
    ]
    # Not the first (the init owner): any control plane may go, and the others must carry on.
    twin.terminate(control_planes_now[len(control_planes_now) // 2], decrement=False)
    _settle(twin, "scale-in")


def remediation(twin: Twin, control_planes: int, workers: int) -> None:
    """Scale out, then one worker's kubelet stops and one control plane's API server dies, both while
    their instances stay healthy to EC2. The alarms fire, the remediator replaces both, one after the
    other (through the hooks: drained, Node deleted, etcd member removed, a replacement joined)."""
    scale_out(twin, control_planes, workers)
    worker = _nth(twin, contract.ROLE_WORKER, 1)
    control_plane = _nth(twin, contract.ROLE_CONTROL_PLANE, 1)
    twin.recorder.note("operator", f"fault: kubelet stops on worker {worker}")
    twin.model.stop_kubelet(worker)
    twin.recorder.note("operator", f"fault: kube-apiserver dies on control plane {control_plane}")
    twin.model.stop_apiserver(control_plane)
    _run_until_gone(twin, {worker, control_plane}, "remediation")
    _settle(twin, "remediation")


def demo(twin: Twin, control_planes: int, workers: int) -> None:
    """What `make demo` shows: a cluster scaling out, in and healing. Scale out; then the workers go
    down by two and a control plane is terminated by hand (and replaced); then a worker's kubelet
    stops and the remediator replaces it."""
    scale_in_to = max(1, workers - 2)
    scale_out(twin, control_planes, workers)
    twin.set_desired(contract.ROLE_WORKER, scale_in_to)
    twin.terminate(_nth(twin, contract.ROLE_CONTROL_PLANE, 1), decrement=False)
    _settle(twin, "scale-in")
    broken = _nth(twin, contract.ROLE_WORKER, 0)
    twin.recorder.note("operator", f"fault: kubelet stops on worker {broken}")
    twin.model.stop_kubelet(broken)
    _run_until_gone(twin, {broken}, "demo")
    _settle(twin, "demo")


# How long the mass failure lasts: long enough for the alarm and several remediation decisions.
MASS_FAILURE_SECONDS = 20 * 60


def mass_failure(twin: Twin, control_planes: int, workers: int) -> None:
    """Scale out, then half the workers (rounded up) go NotReady at once (a partition, not the nodes'
    fault) for 20 minutes. Nothing may be replaced; people are told why; then the kubelets come back."""
    scale_out(twin, control_planes, workers)
    victims = [i["instance_id"] for i in twin.instances() if i["role"] == contract.ROLE_WORKER]
    victims = victims[: (len(victims) + 1) // 2]
    twin.recorder.note("operator", f"fault: kubelets stop on {len(victims)} workers at once")
    for instance_id in victims:
        twin.model.stop_kubelet(instance_id)
    twin.scheduler.run_for(MASS_FAILURE_SECONDS)
    twin.recorder.note("operator", "fault healed: the kubelets are back")
    for instance_id in victims:
        twin.model.start_kubelet(instance_id)
    _settle(twin, "mass-failure")


# The node image an image rollout moves to (any id: the twin's nodes are built from the user data).
NEW_IMAGE_ID = "ami-0a1b2c3d4e5f60718"


def image_rollout(twin: Twin, control_planes: int, workers: int) -> None:
    """Scale out, then a new node image is published as `terraform apply` does it (a new numbered
    launch template version per group, written into the cluster config). The control loop notices,
    runs its preflight, and rolls the control planes (one at a time, each new one joined before an old
    one leaves) and then the workers (their minimum healthy share kept InService) by instance refresh."""
    scale_out(twin, control_planes, workers)
    published = publish_launch_template(twin, NEW_IMAGE_ID)

    def rolled() -> bool:
        at_target = all(
            getattr(state, "launched_template_version", None) == str(published[group.name])
            for group in twin.groups()
            for state in group.instance_states
        )
        return at_target and twin.settled()

    if not _run_watched_until(twin, rolled):
        raise ScenarioError(f"the image rollout did not finish (seed {twin.seed})")
    _settle(twin, "image-rollout")


def _run_watched_until(twin: Twin, done: Callable[[], bool]) -> bool:
    """Run the world step by step, the watchers sampling after each (as run_until_settled does),
    until `done` or the limit."""
    deadline = twin.clock.now() + SETTLE_LIMIT_SECONDS
    while not done():
        if twin.clock.now() >= deadline or not twin.scheduler.run_next():
            return False
        for watch in twin.watchers:
            watch(twin)
    return True


def _nth(twin: Twin, role: str, index: int) -> str:
    of_role = [i["instance_id"] for i in twin.instances() if i["role"] == role]
    return of_role[min(index, len(of_role) - 1)]


def _run_until_gone(twin: Twin, instance_ids: set[str], what: str) -> None:
    def replaced() -> bool:
        return not instance_ids & {i["instance_id"] for i in twin.instances()} and twin.settled()

    if not twin.scheduler.run_until(replaced, SETTLE_LIMIT_SECONDS):
        raise ScenarioError(f"the broken instances were not replaced in {what} (seed {twin.seed})")


SCENARIOS: dict[str, Callable[[Twin, int, int], None]] = {
    "scale-out": scale_out,
    "scale-in": scale_in,
    "remediation": remediation,
    "mass-failure": mass_failure,
    "demo": demo,
    "image-rollout": image_rollout,
}


def run(
    name: str,
    *,
    control_planes: int = 3,
    workers: int = 5,
    seed: int = 7,
    prepare: Callable[[Twin], None] | None = None,
) -> ScenarioResult:
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    twin = Twin(seed=seed)
    quorum = QuorumWatch()
    twin.watchers.append(quorum.sample)
    skew = SkewWatch()
    twin.watchers.append(skew.sample)
    backups = BackupWatch()
    twin.watchers.append(backups.sample)
    min_healthy = MinHealthyWatch()
    twin.watchers.append(min_healthy.sample)
    try:
        if prepare is not None:
            prepare(twin)
        SCENARIOS[name](twin, control_planes, workers)
        report = build_report(twin, quorum, {"scenario": name}, skew, backups)
        report["invariants"]["min_healthy_respected"] = vars(min_healthy.invariant())
        report["invariants"]["all_at_target"] = vars(all_at_target(twin))
        return ScenarioResult(twin, report)
    except BaseException:
        twin.close()
        raise


from twin import chaos  # noqa: E402, F401 - registers the "chaos" scenario (twin/chaos.py)
