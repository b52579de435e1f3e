"""kill -9 of a whole `ratchet run` (its process group: its DVC stages too) at every named point of
a batch's life; each next run resumes, and the last one leaves one truth. The kill during training
is a kill while the training slot is held: the next run trains without waiting for it."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from ratchet.batch_state import BatchStates
from ratchet.intake import load_batch
from ratchet.project import Project
from tests.conftest import synthetic_frame
from tests.faults.conftest import assert_consistent, registered_versions, run
from tests.integration.conftest import drop, project_with_champion

# In a batch's order: each killed run resumes what the one before left, then dies further along.
KILL_POINTS = ("after_receive", "mid_validation", "after_accept", "during_train", "after_register",
               "during_promotion")


def test_a_kill_at_every_named_point_is_recovered_by_the_next_run(tmp_path, champion_template, fault_env):
    paths = project_with_champion(champion_template, tmp_path / "project")
    blue = drop(paths, "01-blue.csv", synthetic_frame({"blue": 40}, seed=1, prefix="k"), minute=1)
    original = blue.read_bytes()
    blue_id, _ = load_batch(blue, Project.load(paths.root).settings)

    reached, outputs = [], {}
    for point in KILL_POINTS:
        killed = run(paths, fault_env, f"{point}:kill")
        assert killed.returncode == -signal.SIGKILL, f"{point}: not killed\n{killed.output[-3000:]}"
        outputs[point] = killed.output
        reached.append((point, [e.state for e in BatchStates(paths).events() if e.batch_id == blue_id][-1]))
        if point == "during_train":   # killed holding this machine's training slot
            [slot] = Path(fault_env["RATCHET_LOCK_DIR"]).glob("*.holder")
            assert "training slot" in json.loads(slot.read_text())["what"]
    # where each kill left the batch: the ledger moved exactly as far as the point
    assert [state for _, state in reached] == ["received", "received", "accepted", "accepted", "accepted",
                                               "accepted"], reached
    assert paths.promotion_record.exists(), "killed half way through its promotion"
    # the run after the kill during training trained at once: the dead holder's slot was free
    assert "waiting for the training slot" not in outputs["after_register"]

    done = run(paths, fault_env)
    assert done.returncode == 0, done.output[-4000:]
    assert "a promotion interrupted half way was completed" in done.output
    states = {e.file: e.state for e in BatchStates(paths).current()}
    assert states["01-blue.csv"] == "promoted"
    assert_consistent(paths)
    # v1 the first champion, v2 the blue batch: registered once despite two runs through register
    assert registered_versions(paths) == ["1", "2"]
    assert (paths.archive / blue_id / "01-blue.csv").read_bytes() == original, "the original file is kept"
