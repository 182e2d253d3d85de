"""`unshare --mount python full_disk.py CONFIG DIR`: a `debate run` whose SQLite file lies
on a small tmpfs (private to this mount namespace) that fills up under it.

Mounts the tmpfs on DIR, starts the run there, fills the disk once two steps are stored,
and prints one JSON line: the run's exit code and stderr, PRAGMA integrity_check on what
it left (after freeing the space), and a copy of that database in DIR/../after.db."""

from __future__ import annotations

import errno
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

config, disk = sys.argv[1], Path(sys.argv[2])
disk.mkdir(parents=True, exist_ok=True)
subprocess.run(["mount", "--make-rprivate", "/"], check=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], check=True)
try:
    db = disk / "run.db"
    exe = Path(sys.executable).with_name("debate")
    proc = subprocess.Popen([str(exe), "run", config, "--db", f"sqlite:///{db}", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stored() -> int:
        if not db.exists():
            return 0
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute("SELECT count(*) FROM turns").fetchone()[0]
        except sqlite3.OperationalError:
            return 0
        finally:
            conn.close()

    deadline = time.monotonic() + 120
    while stored() < 16:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the run ended or stalled before the disk filled: "
                             f"{proc.communicate()}")
        time.sleep(0.05)
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:  # take every free block
        for size in (1 << 16, 4096, 512, 1):
            try:
                while fh.write(b"\0" * size):
                    pass
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    out, err = proc.communicate(timeout=120)
    filler.unlink()
    conn = sqlite3.connect(db)
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    copy = sqlite3.connect(disk.parent / "after.db")
    conn.backup(copy)
    copy.close()
    conn.close()
    print(json.dumps({"returncode": proc.returncode, "stdout": out, "stderr": err,
                      "integrity": integrity}))
finally:
    subprocess.run(["umount", "-l", str(disk)], check=False)
