"""Pool worker processes that leave by themselves once the service that made them is gone.

A ``ProcessPoolExecutor`` worker waits on its call queue for ever, and nothing closes that queue when the
service dies without shutting its pool down (``kill -9``, the kernel's OOM killer): each worker holds both
ends of the queue's pipe itself. Under ``forkserver`` it also keeps the forkserver alive (every worker holds
the forkserver's "alive" pipe, and the forkserver leaves only at that pipe's EOF) and the resource tracker
(whose pipe every one of them holds): a killed service left four processes behind, re-parented to init.

The worker's parent is the forkserver, not the service, so ``os.getppid()`` cannot tell, and neither can
``PR_SET_PDEATHSIG`` (it fires at the death of the parent, which waits for the workers: a circle). So the
pool hands its workers the service's pid, and each one watches it from a daemon thread, knowing the
process by its start time too, so that another process given the same pid later is not taken for it.
Once the workers are gone, the forkserver and the resource tracker see their pipes' EOF and exit.

Imported by worker processes: keep it to the standard library.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

POLL_SECONDS = 1.0
NO_PROC = b""  # where /proc cannot be read: the pid alone identifies the process


def process_identity(pid: int) -> bytes | None:
    """What tells the process now at ``pid`` apart from any later one (its start time, field 22 of
    /proc/<pid>/stat); None once it has gone, a zombie included (killed, not yet reaped by its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # another user's process: not the service, whose workers run as its own user
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # after the command, which may hold anything
    except FileNotFoundError:
        return None if os.path.exists("/proc/self/stat") else NO_PROC  # gone meanwhile, or no /proc here
    state, started = fields[0], fields[19]
    return None if state in (b"Z", b"X") else started


def watch_owner(owner_pid: int) -> None:
    """In a pool worker's initializer: end this process soon after the process ``owner_pid`` is gone."""
    threading.Thread(
        target=_exit_when_gone, args=(owner_pid, process_identity(owner_pid)), daemon=True, name="owner-watch"
    ).start()


def _exit_when_gone(pid: int, identity: bytes | None) -> None:
    while identity is not None and process_identity(pid) == identity:
        time.sleep(POLL_SECONDS)
    os._exit(0)  # not sys.exit: nothing of the pool's shutdown is to run, its owner is gone


def owned_process_pool(workers: int | None, setup: Callable[..., None] | None = None, *setup_args: Any) -> ProcessPoolExecutor:
    """A process pool for a service's CPU work: ``forkserver`` workers (the event-loop process, with its
    threads and sockets, is never forked), each running ``setup(*setup_args)`` first if given (a module-level
    function), then watching this process and leaving once it is gone (killed: no shutdown reaches the pool)."""
    return ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("forkserver"), initializer=_start_worker, initargs=(os.getpid(), setup, setup_args)
    )


def _start_worker(owner_pid: int, setup: Callable[..., None] | None, setup_args: tuple[Any, ...]) -> None:
    if setup is not None:
        setup(*setup_args)
    watch_owner(owner_pid)
