"""Three `ratchet run` started at once on one project, each on its own embedded Prefect server over
one fresh Prefect database: they queue on the project's run lock (taken before Prefect starts, so
no two servers migrate the database at once), each file is claimed once, nothing hangs."""

from __future__ import annotations

from ratchet.batch_state import BatchStates
from tests.conftest import synthetic_frame
from tests.faults.conftest import assert_consistent, finish, registered_versions, start_run
from tests.integration.conftest import drop, project_with_champion


def test_three_runs_at_once_process_each_batch_once(tmp_path, champion_template, embedded_env):
    # the two good batches train together (60 new training rows), so one training
    paths = project_with_champion(champion_template, tmp_path / "project",
                                  {"policy.train_on": "min_new_examples", "policy.min_new_examples": 60})
    drop(paths, "01-blue.csv", synthetic_frame({"blue": 40}, seed=1, prefix="c1"), minute=1)
    drop(paths, "02-no-label.csv", synthetic_frame({"red": 20}, seed=2, prefix="c2").drop(columns="label"), minute=2)
    drop(paths, "03-green.csv", synthetic_frame({"green": 40}, seed=3, prefix="c3"), minute=3)

    runs = [start_run(paths, embedded_env) for _ in range(3)]
    results = [finish(process) for process in runs]
    for result in results:
        assert result.returncode == 0, result.output[-4000:]   # no DVC lock error, no migration race
    assert sum("waiting for the loop of" in r.output for r in results) >= 1, "the others queued on the run lock"

    events = BatchStates(paths).events()
    received = [(e.file, e.arrival) for e in events if e.state == "received"]
    assert sorted(received) == sorted(set(received)) and len(received) == 3, "each file claimed by one run, once"
    states = {e.file: e.state for e in BatchStates(paths).current()}
    assert states["02-no-label.csv"] == "quarantined" and states["01-blue.csv"] == states["03-green.csv"]
    assert states["01-blue.csv"] in {"promoted", "rejected"}
    assert sum(e.state in ("promoted", "rejected") for e in events) == 3, "reference + one training of two"
    assert registered_versions(paths) == ["1", "2"], "the two batches trained and registered once"
    assert_consistent(paths)
