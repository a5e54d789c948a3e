"""Bounded load test of `siger serve`: N requests, C concurrent, p50/p99 latency and errors.

    python -m benchmarks.serve_load --run runs/X [--requests 2000] [--concurrency 16] [--k 10]

Starts the real server on a free loopback port (a separate process), sends GET
/recommend/{user}?k=K for users drawn round-robin from the run's users, and prints one JSON
line and a Markdown row. Needs siger[serve] (FastAPI, uvicorn, httpx).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np

from benchmarks import harness


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


WRK_SCRIPT = """
local users = {%s}
local history = '%s'
local mode = '%s'
local k = %d
math.randomseed(1)
request = function()
  if mode == 'history' then
    return wrk.format('POST', '/recommend', {['Content-Type'] = 'application/json'}, history)
  end
  return wrk.format('GET', '/recommend/' .. users[math.random(#users)] .. '?k=' .. k)
end
done = function(summary, latency, requests)
  io.write(string.format('JSON {"requests": %%d, "seconds": %%.3f, "non2xx": %%d, "socket_errors": %%d, '
    .. '"p50_ms": %%.3f, "p99_ms": %%.3f, "max_ms": %%.3f}\\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def run_wrk(base: str, users: list[str], history: list[str], mode: str, seconds: int, connections: int,
            threads: int, k: int) -> dict:
    """``wrk`` (Debian's package) against the server for ``seconds``: GET /recommend/{user} for
    random users (``mode`` "user") or POST /recommend with one 20-item history ("history")."""
    import shutil
    import tempfile

    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk); use --tool python")
    body = json.dumps({"history": history, "k": k})
    script = WRK_SCRIPT % (", ".join(json.dumps(u) for u in users), body, mode, k)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          "-s", fh.name, base], capture_output=True, text=True, check=True)
    os.unlink(fh.name)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("JSON "))
    res = json.loads(line[5:])
    res.update(mode=mode, connections=connections, wrk_threads=threads, k=k,
               throughput_rps=round(res["requests"] / res["seconds"], 1), errors=res["non2xx"] + res["socket_errors"])
    return res


def batch_latency(base: str, users: list[str], k: int, repeats: int = 20) -> dict:
    """POST /recommend for ``len(users)`` users at once: median and worst of ``repeats`` requests,
    timed by curl (outside Python, as wrk) when installed, else by the Python client."""
    import shutil
    import tempfile

    body = json.dumps({"users": users, "k": k})
    times = []
    if shutil.which("curl"):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            fh.write(body)
        for _ in range(repeats + 2):
            out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-X", "POST",
                                  "-H", "Content-Type: application/json", "--data-binary", f"@{fh.name}",
                                  base + "/recommend"], capture_output=True, text=True, check=True)
            code, seconds = out.stdout.split()
            assert code == "200", out.stdout
            times.append(float(seconds))
        os.unlink(fh.name)
        tool = "curl"
    else:
        import httpx

        with httpx.Client(base_url=base, timeout=60) as client:
            for _ in range(repeats + 2):
                t = time.perf_counter()
                r = client.post("/recommend", content=body, headers={"Content-Type": "application/json"})
                times.append(time.perf_counter() - t)
                assert r.status_code == 200
        tool = "httpx"
    times = times[2:]  # two warm-up requests
    return {"users": len(users), "median_ms": round(float(np.median(times)) * 1e3, 2),
            "max_ms": round(float(np.max(times)) * 1e3, 2), "timed_by": tool}


def main(argv: list[str] | None = None) -> int:
    import httpx

    ap = harness.parser(__doc__)
    ap.add_argument("--run", required=True)
    ap.add_argument("--tool", choices=["wrk", "python"], default="wrk",
                    help="wrk (a load generator outside Python, default) or the Python client (a fallback)")
    ap.add_argument("--requests", type=int, default=2000, help="python: requests")
    ap.add_argument("--concurrency", type=int, default=16, help="concurrent connections")
    ap.add_argument("--seconds", type=int, default=10, help="wrk: seconds per scenario")
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server worker processes")
    ap.add_argument("--k", type=int, default=20)
    args = ap.parse_args(argv)

    from siger.serve.recommender import load_run

    rec = load_run(args.run)
    users = rec.user_ids[:: max(1, rec.n_users // 1000)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "siger", "serve", "--run", args.run, "--port", str(port),
                             "--workers", str(args.workers)],
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
        time.sleep(2)  # every worker up
        history = rec.item_ids[:: max(1, rec.n_items // 20)][:20]
        if args.tool == "wrk":
            stats = {"user": run_wrk(base, users, history, "user", args.seconds, args.concurrency, args.wrk_threads,
                                     args.k),
                     "history": run_wrk(base, users, history, "history", args.seconds, args.concurrency,
                                        args.wrk_threads, args.k)}
        else:
            stats = {"user": run_load(base, users, args.requests, args.concurrency, args.k)}
        stats["batch"] = batch_latency(base, rec.user_ids[:1000], args.k)
    finally:
        proc.terminate()
        proc.wait(10)
    stats.update(model=rec.model_name, dataset=rec.dataset, users=rec.n_users, items=rec.n_items, tool=args.tool,
                 workers=args.workers)
    u, b = stats["user"], stats["batch"]
    summary = (f"GET /recommend/{{user}}?k={args.k}: {u['throughput_rps']:.0f} requests/s, p50 {u['p50_ms']:.1f} ms, "
               f"p99 {u['p99_ms']:.1f} ms, {u['errors']} errors")
    if "history" in stats:
        h = stats["history"]
        summary += (f"; fold-in (20-item history): {h['throughput_rps']:.0f} requests/s, p99 {h['p99_ms']:.1f} ms, "
                    f"{h['errors']} errors")
    summary += f"; POST /recommend for {b['users']} users: median {b['median_ms']:.0f} ms"
    harness.report(args, stats, f"serving load: {rec.model_name} on {rec.dataset} ({rec.n_items:,} items)",
                   f"{args.tool}, {args.concurrency} connections on loopback, {args.workers} server worker(s), "
                   f"{args.seconds if args.tool == 'wrk' else args.requests} {'s' if args.tool == 'wrk' else 'requests'} "
                   "per scenario", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
