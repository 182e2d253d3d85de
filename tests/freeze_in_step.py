"""`python freeze_in_step.py N ARGS...`: the `debate` command (ARGS), except that the
process stops itself (SIGSTOP) inside its N-th step transaction, after locking and
writing the step's rows and before committing: a worker frozen (a paused VM, a stopped
container) at the worst moment. SIGCONT wakes it."""

from __future__ import annotations

import os
import signal
import sys

from debate.cli import main
from debate.store import runs

N = int(sys.argv[1])
_apply_updates = runs._apply_updates
calls = 0


def freezing_apply_updates(*args, **kwargs):
    global calls
    calls += 1
    _apply_updates(*args, **kwargs)
    if calls == N:
        os.kill(os.getpid(), signal.SIGSTOP)


runs._apply_updates = freezing_apply_updates
main(sys.argv[2:])
