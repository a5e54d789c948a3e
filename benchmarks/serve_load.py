"""Bounded load test of `siger serve`: N requests, C concurrent, p50/p99 latency and errors.

    python -m benchmarks.serve_load --run runs/X [--requests 2000] [--concurrency 16] [--k 10]

Starts the real server on a free loopback port (a separate process), sends GET
/recommend/{user}?k=K for users drawn round-robin from the run's users, and prints one JSON
line and a Markdown row. Needs siger[serve] (FastAPI, uvicorn, httpx).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np


def run_load(base: str, users: list[str], n_requests: int = 2000, concurrency: int = 16, k: int = 10) -> dict:
    """Send ``n_requests`` GETs over ``concurrency`` threads (one keep-alive client each)."""
    import httpx

    lat = np.zeros(n_requests)
    status = np.zeros(n_requests, dtype=np.int64)
    counter = iter(range(n_requests))
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while True:
                with lock:
                    j = next(counter, None)
                if j is None:
                    return
                t = time.perf_counter()
                try:
                    status[j] = client.get(f"/recommend/{users[j % len(users)]}", params={"k": k}).status_code
                except httpx.HTTPError:
                    status[j] = -1
                lat[j] = time.perf_counter() - t

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    return {
        "requests": n_requests, "concurrency": concurrency, "k": k,
        "errors": int((status != 200).sum()),
        "p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 2),
        "p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 2),
        "max_ms": round(float(lat.max()) * 1e3, 2),
        "throughput_rps": round(n_requests / wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    import httpx

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args(argv)

    from siger.serve.recommender import load_run

    rec = load_run(args.run)
    users = rec.user_ids[:: max(1, rec.n_users // 1000)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "siger", "serve", "--run", args.run, "--port", str(port)],
                            env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("server did not start")
        stats = run_load(base, users, args.requests, args.concurrency, args.k)
    finally:
        proc.terminate()
        proc.wait(10)
    stats.update(model=rec.model_name, dataset=rec.dataset, users=rec.n_users, items=rec.n_items)
    print(json.dumps(stats))
    print(f"| {rec.model_name} | {rec.dataset} ({rec.n_items:,} items) | {stats['requests']} | {stats['concurrency']} "
          f"| {stats['p50_ms']} | {stats['p99_ms']} | {stats['throughput_rps']} | {stats['errors']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
