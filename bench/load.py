"""Load benchmark: viewers turning slides and sending tracking reports, plus investors chatting, against a
real `deckchat serve` on loopback — once on SQLite and once on PostgreSQL, with the same load.

    python bench/load.py                  # 50 viewers + 10 chatters, 60 s on SQLite, then on PostgreSQL
    python bench/load.py --quick          # 20 viewers + 4 chatters, 12 s on SQLite; under 60 s in all
    python bench/load.py --quick --databases sqlite,postgresql

Each database gets a fresh instance prepared with `deckchat demo` (the demo deck, indexed) and the extractive
engine; PostgreSQL gets a throw-away database on the server given by --postgres-server, dropped afterwards.
Prints one JSON object (and writes it to --out): p50/p95 latency per endpoint, errors, events_sent /
events_stored, and whether the targets hold. The load is bounded by --duration and --max-requests.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = "bench-warm-up"  # request id of the requests made before measuring
TARGETS_MS = {"viewer_page": 100.0, "slide_image": 100.0, "track": 50.0}  # p95, SQLite run
QUESTIONS = [
    "What does Northwind do?", "How much are you raising?", "Who are the founders?",
    "What is the revenue model?", "Who are your competitors?", "How big is the market?",
]


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Recorder:
    """Latencies and failures per endpoint, and a global request budget."""

    def __init__(self, max_requests: int):
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)
        self.budget = max_requests
        self.events_sent = 0   # tracking reports posted
        self.events_ok = 0     # ... and answered 200

    def take(self) -> bool:
        """Spend one request of the budget; False once it is used up."""
        self.budget -= 1
        return self.budget >= 0

    async def call(self, name: str, client: httpx.AsyncClient, method: str, url: str,
                   **kw) -> httpx.Response | None:
        """One timed request; any non-2xx answer or exception counts as an error of `name`."""
        started = time.perf_counter()
        try:
            response = await client.request(method, url, **kw)
            await response.aread()
        except httpx.HTTPError as exc:
            self.errors[name].append(type(exc).__name__)
            return None
        self.latency[name].append((time.perf_counter() - started) * 1000)
        if response.status_code >= 400:
            self.errors[name].append(str(response.status_code))
        return response


async def viewer(rec: Recorder, base: str, token: str, slides: int, stop: float, rng: random.Random) -> None:
    """Open the link, look at slides in turn (1-3 s each), report visible time every second and on leaving."""
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < stop and rec.take():
            page = await rec.call("viewer_page", client, "GET", f"{base}/s/{token}")
            if page is None or page.status_code != 200:
                await asyncio.sleep(1)
                continue
            visit = re.search(r'data-visit="([^"]+)"', page.text).group(1)
            for slide in range(1, slides + 1):
                if time.monotonic() >= stop or not rec.take():
                    return
                await rec.call("slide_image", client, "GET", f"{base}/s/{token}/slides/{slide}.png")
                stay, dwell = secrets.token_urlsafe(9), rng.uniform(1.0, 3.0)
                shown = 0.0
                while shown < dwell and time.monotonic() < stop:
                    step = min(1.0, dwell - shown)
                    await asyncio.sleep(step)
                    shown += step
                    if not rec.take():
                        return
                    rec.events_sent += 1
                    body = json.dumps({"visit": visit, "view": stay, "slide": slide,
                                       "visible_ms": int(shown * 1000)})
                    # sendBeacon posts text/plain
                    resp = await rec.call("track", client, "POST", f"{base}/api/track", content=body,
                                          headers={"Content-Type": "text/plain"})
                    rec.events_ok += resp is not None and resp.status_code == 200


async def chatter(rec: Recorder, base: str, token: str, stop: float, rng: random.Random, *,
                  questions: int = 10**9, think: tuple[float, float] = (3.0, 6.0),
                  headers: dict | None = None) -> None:
    """Open the link, then ask a question every 3-6 s and read each streamed answer to its end."""
    async with httpx.AsyncClient(timeout=120, headers=headers) as client:
        page = await rec.call("viewer_page", client, "GET", f"{base}/s/{token}")
        if page is None or page.status_code != 200:
            return
        visit = re.search(r'data-visit="([^"]+)"', page.text).group(1)
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)
        for _ in range(questions):
            if time.monotonic() >= stop or not rec.take():
                return
            await asyncio.sleep(rng.uniform(*think))
            if time.monotonic() >= stop:
                return
            body = {"question": rng.choice(QUESTIONS), "visit": visit, "slide": None}
            started, first = time.perf_counter(), None
            try:
                wanted = {"X-CSRFToken": csrf, "Accept": "text/event-stream"}
                async with client.stream("POST", f"{base}/s/{token}/chat", json=body, headers=wanted) as resp:
                    text = ""
                    async for chunk in resp.aiter_text():
                        first = first or time.perf_counter()
                        text += chunk
            except httpx.HTTPError as exc:
                rec.errors["chat"].append(type(exc).__name__)
                continue
            done = time.perf_counter()
            if resp.status_code != 200 or "event: done" not in text:
                failure = "no done event" if resp.status_code == 200 else str(resp.status_code)
                rec.errors["chat"].append(failure)
                continue
            rec.latency["chat"].append((done - started) * 1000)
            rec.latency["chat_first_byte"].append(((first or done) - started) * 1000)


def percentiles(values: list[float]) -> dict:
    """Count, p50 and p95 (nearest rank) in milliseconds."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    rank = lambda q: ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]  # noqa: E731
    return {"count": len(values), "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(rank(0.95), 1), "max_ms": round(ordered[-1], 1)}


def _cli(env: dict, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "deckchat", *args, "--json"], env=env, capture_output=True,
                         text=True, timeout=600)
    if out.returncode:
        raise RuntimeError(f"deckchat {' '.join(args)} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def _admin(server_url: str, sql: str) -> None:
    """Run CREATE/DROP DATABASE on the PostgreSQL server (outside a transaction)."""
    from sqlalchemy import create_engine  # noqa: PLC0415

    engine = create_engine(f"{server_url.rstrip('/')}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def _stored_events(database_url: str) -> int:
    from sqlalchemy import create_engine  # noqa: PLC0415

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT COALESCE(SUM(events), 0) FROM slide_views").scalar())
    finally:
        engine.dispose()


def run_one(name: str, database_url: str | None, args: argparse.Namespace) -> dict:
    """Prepare an instance on one database, serve it, load it, and measure."""
    with tempfile.TemporaryDirectory(prefix=f"deckchat-bench-{name}-") as tmp:
        instance = Path(tmp) / "instance"
        env = {**os.environ, "DECKCHAT_INSTANCE_PATH": str(instance), "HF_HUB_OFFLINE": "1",
               "DECKCHAT_ENGINE": "extractive", "DECKCHAT_SECRET_KEY": secrets.token_hex(32),
               # Every simulated visitor comes from 127.0.0.1: lift the per-address limits, keep them active.
               "DECKCHAT_TRACK_RATE_LIMIT": "1000000 per minute",
               "DECKCHAT_CHAT_RATE_LIMIT_VISITOR": "100000 per minute",
               "DECKCHAT_CHAT_RATE_LIMIT_LINK": "100000 per minute",
               "DECKCHAT_CHAT_RATE_LIMIT_ADDRESS": "100000 per minute",
               "DECKCHAT_OPEN_RATE_LIMIT": "100000 per minute"}
        if database_url:
            env["DATABASE_URL"] = database_url
        if args.quick:
            env["DECKCHAT_SOFFICE"] = str(instance / "no-libreoffice")  # placeholder slides: a faster set-up
        demo = _cli(env, "demo")
        token = demo["share_url"].rsplit("/", 1)[1]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        serve = [sys.executable, "-m", "deckchat", "serve", "--port", str(port)]
        if args.workers:
            serve += ["--workers", str(args.workers)]
        log = open(Path(tmp) / "server.log", "w")
        proc = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            _wait_ready(base, proc, Path(tmp) / "server.log")
            slides = int(re.search(r'data-count="(\d+)"', urllib.request.urlopen(f"{base}/s/{token}").read()
                                   .decode()).group(1))
            _warm_up(base, token, Path(tmp) / "server.log")
            rec = Recorder(args.max_requests)
            started = time.monotonic()
            asyncio.run(_load(rec, base, token, slides, args))
            elapsed = time.monotonic() - started
            stored = _stored_events(database_url or f"sqlite:///{instance / 'deckchat.db'}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
            server_errors = _server_errors(Path(tmp) / "server.log")
            server_side = _server_latency(Path(tmp) / "server.log")
    endpoints = {key: percentiles(values) for key, values in sorted(rec.latency.items())}
    errors = {key: len(values) for key, values in rec.errors.items() if values}
    return {"database": name, "seconds": round(elapsed, 1),
            "requests": sum(e["count"] for e in endpoints.values()),
            "endpoints": endpoints, "errors": sum(errors.values()), "errors_by_endpoint": errors,
            "error_samples": {k: sorted(set(v))[:5] for k, v in rec.errors.items() if v},
            "events_sent": rec.events_sent, "events_acknowledged": rec.events_ok, "events_stored": stored,
            "events_lost": rec.events_sent - stored, "budget_exhausted": rec.budget < 0,
            "server_ms": server_side, "server_errors": server_errors}


ROUTES = {"/s/<token>": "viewer_page", "/s/<token>/slides/<int:number>.png": "slide_image",
          "/api/track": "track", "/s/<token>/chat": "chat"}


def _server_latency(log: Path) -> dict:
    """p50/p95 of the server's own request durations (its access log), per endpoint."""
    durations: dict[str, list[float]] = defaultdict(list)
    for line in log.read_text(errors="replace").splitlines():
        if '"deckchat.access"' not in line:
            continue
        entry = json.loads(line)
        name = ROUTES.get(entry.get("route"))
        if name and entry.get("request_id") != WARM_UP:
            durations[name].append(float(entry["duration_ms"]))
    return {name: percentiles(values) for name, values in sorted(durations.items())}


def _server_errors(log: Path, keep: int = 5) -> list[str]:
    """The first few error lines the server logged (JSON lines), shortened."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if '"level": "error"' in line or "Traceback" in line:
            found.append(line[:300])
            if len(found) == keep:
                break
    return found


def _warm_up(base: str, token: str, log: Path) -> None:
    """One chat answer before measuring: the first loads the embedding model into the worker."""
    for _attempt in range(5):
        rec = Recorder(10)
        asyncio.run(chatter(rec, base, token, time.monotonic() + 300, random.Random(0), questions=1,
                            think=(0.0, 0.0), headers={"X-Request-ID": WARM_UP}))
        if not rec.errors and rec.latency["chat"]:
            return
        time.sleep(3)  # a 503 says "not yet": the engine or the index may still be starting
    raise RuntimeError(f"warm-up failed: {dict(rec.errors)}; server errors: {_server_errors(log)}")


def _wait_ready(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"deckchat serve exited before it was ready:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"{base}/readyz", timeout=5).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("deckchat serve was not ready within 180 s")


async def _load(rec: Recorder, base: str, token: str, slides: int, args: argparse.Namespace) -> None:
    stop = time.monotonic() + args.duration
    rng = random.Random(args.seed)
    tasks = [viewer(rec, base, token, slides, stop, random.Random(rng.random())) for _ in range(args.viewers)]
    tasks += [chatter(rec, base, token, stop, random.Random(rng.random())) for _ in range(args.chatters)]

    async def staggered(i: int, job):
        await asyncio.sleep(i / args.spawn_rate)  # users arrive at a steady rate, like `locust -r`
        await job

    everyone = asyncio.gather(*(staggered(i, t) for i, t in enumerate(tasks)))
    await asyncio.wait_for(everyone, args.duration + 90)


def _verdict(runs: dict) -> dict:
    """Which targets hold: zero errors and lost events everywhere, latency targets on SQLite."""
    checks = {}
    for name, run in runs.items():
        checks[f"{name}: errors == 0"] = run["errors"] == 0
        checks[f"{name}: events_lost == 0"] = run["events_lost"] == 0
    if "sqlite" in runs:
        for endpoint, limit in TARGETS_MS.items():
            p95 = runs["sqlite"]["endpoints"].get(endpoint, {}).get("p95_ms")
            checks[f"sqlite: {endpoint} p95 <= {limit:g} ms"] = p95 is not None and p95 <= limit
    return {"checks": checks, "pass": all(checks.values())}


def main() -> None:
    """Parse arguments, run the load on each database, print and save the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="20 viewers, 4 chatters, 12 s, SQLite only, placeholder slides (no LibreOffice)")
    parser.add_argument("--viewers", type=int)
    parser.add_argument("--chatters", type=int)
    parser.add_argument("--duration", type=float, help="seconds of load per database")
    parser.add_argument("--max-requests", type=int, default=200_000, help="request budget per database")
    parser.add_argument("--databases", help="sqlite and/or postgresql (default both; --quick: sqlite)")
    parser.add_argument("--postgres-server", help="server URL without a database name",
                        default=os.environ.get("DECKCHAT_BENCH_POSTGRES", "postgresql+psycopg://root@127.0.0.1:5432"))
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: what `deckchat serve` picks)")
    parser.add_argument("--spawn-rate", type=float, default=10.0, help="users arriving per second")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--out", type=Path, help="default bench/results/load.json (--quick: load-quick.json)")
    args = parser.parse_args()
    defaults = (20, 4, 12.0) if args.quick else (50, 10, 60.0)
    args.databases = args.databases or ("sqlite" if args.quick else "sqlite,postgresql")
    args.viewers = args.viewers if args.viewers is not None else defaults[0]
    args.chatters = args.chatters if args.chatters is not None else defaults[1]
    args.duration = args.duration if args.duration is not None else defaults[2]
    out = args.out or ROOT / "bench" / "results" / ("load-quick.json" if args.quick else "load.json")

    runs = {}
    for name in [d.strip() for d in args.databases.split(",") if d.strip()]:
        if name == "sqlite":
            runs[name] = run_one(name, None, args)
        elif name == "postgresql":
            db_name = f"deckchat_bench_{os.getpid()}"
            _admin(args.postgres_server, f'CREATE DATABASE "{db_name}"')
            try:
                runs[name] = run_one(name, f"{args.postgres_server.rstrip('/')}/{db_name}", args)
            finally:
                _admin(args.postgres_server, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        else:
            parser.error(f"unknown database {name!r}: use sqlite and/or postgresql")
    report = {
        "benchmark": "load", "command": " ".join(["python", "bench/load.py", *sys.argv[1:]]),
        "load": {"viewers": args.viewers, "chatters": args.chatters, "duration_s": args.duration,
                 "spawn_rate_per_s": args.spawn_rate, "slide_dwell_s": [1.0, 3.0], "report_every_s": 1.0,
                 "chat_think_s": [3.0, 6.0], "slide_images": "placeholder" if args.quick else "LibreOffice",
                 "engine": "extractive", "workers": args.workers or "default"},
        "machine": {"cpus": os.cpu_count(), "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "runs": runs, **_verdict(runs),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
