"""Logins under a wrong-password flood: does a flood starve real users?

A launched app (SQLite) with two accounts. Twelve threads POST wrong passwords for
"alice" as fast as they can, each from its own address (X-Forwarded-For, which the
server trusts from 127.0.0.1, as behind a reverse proxy); meanwhile "bob" logs in with
his right password from another address, one login after another, and each login is
timed. Two arms, side by side in one run, on fresh databases:

- before: login throttling off (LoginPolicy(enabled=False)): every guess costs a
  password hash, and bob queues behind them for the server's few hashing slots;
- after: the default policy: after a few failures alice's guesses are refused
  unchecked (no hash), so bob's logins wait for nobody.

Prints per arm: bob's login latency (median, p95) with no flood and under the flood,
the flood's attempts per second and how many were refused unchecked; last line

    login_flood ratio=<before median under flood / after median under flood> target=3.0

    python benchmarks/login_flood.py [--quick]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from debate.accounts import LoginPolicy
from debate.store import open_store
from debate.store.models import User
from debate.users import hash_password
from web.app import launch_app

PASSWORD = "benchmark-password"
THREADS = 12
TARGET = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_logins(base: str, n: int) -> list[float]:
    out = []
    with httpx.Client(base_url=base, timeout=120) as http:
        for _ in range(n):
            t = time.perf_counter()
            r = http.post("login", data={"username": "bob", "password": PASSWORD},
                          headers={"X-Forwarded-For": "10.1.0.1"})
            out.append(time.perf_counter() - t)
            if r.status_code != 200:
                raise SystemExit(f"bob's login failed: {r.status_code} {r.text}")
            time.sleep(0.1)
    return out


def flood(base: str, stop: threading.Event, counts: dict[str, int], k: int) -> None:
    with httpx.Client(base_url=base, timeout=120) as http:
        i = 0
        while not stop.is_set():
            r = http.post("login", data={"username": "alice", "password": f"guess-{k}-{i}"},
                          headers={"X-Forwarded-For": f"10.9.0.{k + 1}"})
            key = "refused" if r.status_code == 429 else "checked"
            counts[key] = counts.get(key, 0) + 1
            i += 1


def arm(name: str, policy: LoginPolicy, n_logins: int, tmp: Path) -> dict[str, float]:
    store = open_store(f"sqlite:///{tmp / (name + '.db')}")
    digest = hash_password(PASSWORD)
    with store.session() as s:
        for user in ("alice", "bob"):
            s.add(User(name=user, role="judge", password_hash=digest))
    demo, url = launch_app(store, "127.0.0.1", free_port(), block=False, quiet=True,
                           policy=policy)
    base = url.rstrip("/") + "/"
    try:
        quiet = timed_logins(base, max(3, n_logins // 2))
        stop = threading.Event()
        counts: dict[str, int] = {}
        threads = [threading.Thread(target=flood, args=(base, stop, counts, k), daemon=True)
                   for k in range(THREADS)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(1.0)  # the flood is under way
        flooded = timed_logins(base, n_logins)
        stop.set()
        for t in threads:
            t.join(timeout=120)
        seconds = time.perf_counter() - started
    finally:
        demo.close()
        store.dispose()
    attempts = sum(counts.values())
    result = {
        "quiet_median": statistics.median(quiet),
        "flood_median": statistics.median(flooded),
        "flood_p95": sorted(flooded)[max(0, int(len(flooded) * 0.95) - 1)],
        "flood_rate": attempts / seconds,
        "refused": counts.get("refused", 0),
        "attempts": attempts,
    }
    print(f"{name:6s}  bob quiet median {result['quiet_median'] * 1000:7.0f} ms   "
          f"under flood median {result['flood_median'] * 1000:7.0f} ms  "
          f"p95 {result['flood_p95'] * 1000:7.0f} ms   flood {result['flood_rate']:6.1f} "
          f"attempts/s, {result['refused']}/{attempts} refused unchecked", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed logins")
    args = parser.parse_args()
    n = 6 if args.quick else 20
    with tempfile.TemporaryDirectory() as tmp:
        before = arm("before", LoginPolicy(enabled=False), n, Path(tmp))
        after = arm("after", LoginPolicy(), n, Path(tmp))
    ratio = before["flood_median"] / after["flood_median"]
    print(f"login_flood ratio={ratio:.2f} target={TARGET}")


if __name__ == "__main__":
    main()
