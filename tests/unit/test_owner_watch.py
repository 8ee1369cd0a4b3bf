"""How a pool worker knows its service is gone (``shared.owner_watch``), on real processes."""

from __future__ import annotations

import os
import subprocess
import sys

from shared.owner_watch import process_identity


def test_a_running_process_has_an_identity_that_stays_the_same():
    assert process_identity(os.getpid()) is not None
    assert process_identity(os.getpid()) == process_identity(os.getpid())


def test_a_killed_process_is_gone_before_its_parent_reaps_it_and_after():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert process_identity(child.pid) is not None
    child.kill()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped: a zombie, as a killed service is
    assert process_identity(child.pid) is None
    child.wait()
    assert process_identity(child.pid) is None
