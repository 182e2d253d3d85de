"""Who holds a lease: worker ids, and when a holder is provably dead.

A default worker id is `host:pid:kernel:tag`:

- `host` and `pid` say where to look (for people reading `debates.lease_owner`);
- `kernel` is a digest of the boot id (/proc/sys/kernel/random/boot_id) and the PID
  namespace (/proc/self/ns/pid) the pid belongs to: two processes with the same kernel
  value number their processes in the same table, so one can see whether the other's pid
  is alive; `x` where neither can be read;
- `tag` is random, so two workers never share an id, even with one hostname and one pid
  (cloned VMs, containers sharing the host's UTS namespace, separate PID namespaces).

A lease is taken before it expires only when its holder is provably a dead process on
this kernel: a default id with this worker's kernel value whose pid no longer exists
(or is a zombie). Anything else (another kernel or PID namespace, an id from an older
version, a custom `--worker-id`) waits for the lease to expire.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

UNKNOWN_KERNEL = "x"
_ID = re.compile(r"^(?P<host>.+):(?P<pid>\d+):(?P<kernel>[0-9a-f]{12}|x):(?P<tag>[0-9a-f]{8})$")


@lru_cache(maxsize=1)
def _kernel_id_cached(pid: int) -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return UNKNOWN_KERNEL
    return hashlib.sha256(f"{boot}|{pidns}".encode()).hexdigest()[:12]


def kernel_id() -> str:
    """This process's boot id and PID namespace, digested (12 hex), or 'x' if unknown."""
    return _kernel_id_cached(os.getpid())  # keyed by pid: a forked child may unshare


def default_worker_id() -> str:
    host = socket.gethostname()[:48]
    return f"{host}:{os.getpid()}:{kernel_id()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class WorkerId:
    host: str
    pid: int
    kernel: str
    tag: str


def parse_worker(worker: str) -> WorkerId | None:
    """The parts of a default worker id (also behind a prefix such as `web:`); None for
    anything else (a custom --worker-id, an id from an older version)."""
    m = _ID.match(worker)
    if not m:
        return None
    return WorkerId(m["host"], int(m["pid"]), m["kernel"], m["tag"])


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if os.path.realpath("/proc/self") != f"/proc/{os.getpid()}":
        return True  # /proc belongs to another PID namespace: it cannot tell
    try:  # a killed child its parent has not reaped yet is a zombie: dead
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def provably_dead(owner: str) -> bool:
    """True only if `owner` was a process on this kernel, in this PID namespace, that no
    longer exists."""
    parsed = parse_worker(owner)
    here = kernel_id()
    if parsed is None or here == UNKNOWN_KERNEL or parsed.kernel != here:
        return False
    if parsed.pid == os.getpid():  # this very process (another engine in it, e.g. web)
        return False
    return not process_alive(parsed.pid)


def dead_local_owners(owners: Iterable[str]) -> list[str]:
    """The lease owners among `owners` that are provably dead processes on this kernel."""
    return [owner for owner in owners if provably_dead(owner)]
