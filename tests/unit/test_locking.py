import subprocess
import sys
import time

import pytest

from ratchet.locking import LockTimeout, champion_lock
from ratchet.paths import ProjectPaths


def test_a_second_holder_waits_and_then_times_out_with_a_clear_error(tmp_path):
    paths = ProjectPaths.at(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time, sys\n"
        "from ratchet.locking import champion_lock\nfrom ratchet.paths import ProjectPaths\n"
        f"with champion_lock(ProjectPaths.at({str(tmp_path)!r})):\n"
        "    print('held', flush=True); time.sleep(3)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    with pytest.raises(LockTimeout, match="nothing changed"):
        with champion_lock(paths, timeout_s=0.5):
            pass
    assert time.monotonic() - started >= 0.5
    holder.wait(timeout=10)
    with champion_lock(paths, timeout_s=1):   # free again once the holder is gone
        pass
