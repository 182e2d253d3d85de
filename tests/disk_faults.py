"""`unshare --mount python disk_faults.py MODE CONFIG DIR`: a `debate run` whose SQLite
file lies on a small tmpfs (private to this mount namespace) that fails under it.

MODE full: the run starts there and the disk fills up once two steps are stored.
MODE readonly: the run is killed (-9) once two steps are stored, the file system is made
read-only, and the run is started again on it.

Prints one JSON line: the failing run's exit code, stdout and stderr, PRAGMA
integrity_check on what it left (with the disk writable and free again), and a copy of
that database in DIR/../after.db."""

from __future__ import annotations

import errno
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

mode, config, disk = sys.argv[1], sys.argv[2], Path(sys.argv[3])
disk.mkdir(parents=True, exist_ok=True)
subprocess.run(["mount", "--make-rprivate", "/"], check=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], check=True)
db = disk / "run.db"
exe = Path(sys.executable).with_name("debate")
command = [str(exe), "run", config, "--db", f"sqlite:///{db}", "--quiet"]


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


def fill(path: Path) -> None:
    with open(path, "wb", buffering=0) as fh:  # take every free block
        for size in (1 << 16, 4096, 512, 1):
            try:
                while fh.write(b"\0" * size):
                    pass
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise


try:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while stored() < 16:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the run ended or stalled too early: {proc.communicate()}")
        time.sleep(0.05)
    if mode == "full":
        fill(disk / "filler")
        out, err = proc.communicate(timeout=120)
        (disk / "filler").unlink()
        returncode = proc.returncode
    else:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        again = subprocess.run(command, capture_output=True, text=True, timeout=120,
                               check=False)
        out, err, returncode = again.stdout, again.stderr, again.returncode
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    conn = sqlite3.connect(db)
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    copy = sqlite3.connect(disk.parent / "after.db")
    conn.backup(copy)
    copy.close()
    conn.close()
    print(json.dumps({"returncode": returncode, "stdout": out, "stderr": err,
                      "integrity": integrity}))
finally:
    subprocess.run(["umount", "-l", str(disk)], check=False)
