"""Clerk webhook throughput under gunicorn, as a ratio to a trivial endpoint measured on the same server in the same run.

- POST /api/auth/webhook, a realistic mix: per sender, a new user (user.created: a user, a personal organization, a
  subscription), its user.updated, a membership of a shared organization (organizationMembership.created, which
  carries the organization and the user), and every fifth round a new organization.
- POST /api/auth/webhook, redeliveries only: ids already applied (verification, then one insert that conflicts).
- GET /healthz: the trivial endpoint (the ceiling).

Every delivery is signed with Svix's own signer and a fresh svix-id, as Svix sends them; senders are threads with
keep-alive connections. The anonymous rate limit stays on (one statement per request, as in production) but high.

    .venv/bin/python bench/bench_webhooks.py [--seconds 4] [--clients 16]
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import os
import statistics
import threading
import time

from common import ROOT, scratch_database

WEBHOOK = "/api/auth/webhook"


def run(base_url: str, next_request, *, clients: int, seconds: float) -> dict:
    """Send from `clients` threads for `seconds`; `next_request(thread_no)` gives (method, path, body, headers).
    Returns the rate, the statuses and the latency percentiles."""
    host, port = base_url.removeprefix("http://").split(":")
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def sender(number: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        mine: dict[int, int] = {}
        times = []
        while time.monotonic() < deadline:
            method, path, body, headers = next_request(number)
            started = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            times.append(time.perf_counter() - started)
            mine[response.status] = mine.get(response.status, 0) + 1
        conn.close()
        with lock:
            latencies.extend(times)
            for status, n in mine.items():
                statuses[status] = statuses.get(status, 0) + n

    started = time.monotonic()
    threads = [threading.Thread(target=sender, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"rps": len(latencies) / elapsed, "statuses": statuses, "p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}


class Deliveries:
    """Signed Clerk events, generated per sender thread as a stream of realistic changes; remembers what was sent
    so the redelivery run can send applied ids again."""

    def __init__(self, run_id: str) -> None:
        from tests import clerk_payloads as cp

        self.cp = cp
        self.run_id = run_id
        self.counter = itertools.count()
        self.sent: list[tuple[bytes, str]] = []
        self.shared_org = cp.organization_data(f"org_2bench{run_id}", name="Bench Inc", slug=f"bench-{run_id}")
        self._local = threading.local()

    def _events(self, thread_no: int):
        cp = self.cp
        for n in itertools.count():
            key = f"{self.run_id}t{thread_no}n{n}"
            now = cp.T0 + next(self.counter)
            user = cp.user_data(f"user_2{key}", email=f"{key}@example.com", created_at=now)
            yield "user.created", user
            yield "user.updated", {**user, "first_name": "Augusta", "updated_at": now + 1}
            yield "organizationMembership.created", cp.membership_data(
                f"orgmem_2{key}", organization=self.shared_org, user=user, created_at=now + 2)
            if n % 5 == 0:
                yield "organization.created", cp.organization_data(f"org_2{key}", name=f"Org {key}", slug=key,
                                                                   created_by=user["id"], created_at=now)

    def fresh(self, thread_no: int):
        events = getattr(self._local, "events", None)
        if events is None:
            events = self._local.events = self._events(thread_no)
        event_type, data = next(events)
        body, headers = self.cp.signed(self.cp.event(event_type, data))
        self.sent.append((body, headers["svix-id"]))
        return "POST", WEBHOOK, body, headers

    def again(self, thread_no: int):
        body, message_id = self.sent[next(self.counter) % len(self.sent)]
        body, headers = self.cp.signed(body, message_id=message_id)
        return "POST", WEBHOOK, body, headers


def healthz(_thread_no: int):
    return "GET", "/healthz", None, {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()

    from tests import clerk_payloads as cp
    from tests.servers import gunicorn_servers

    workers = int(os.environ.get("BENCH_WORKERS", "2"))
    rates: dict[str, list[dict]] = {"GET /healthz": [], "webhook: new events": [], "webhook: redeliveries": []}
    with scratch_database() as url:
        env = {"DATABASE_URL": url, "CLERK_WEBHOOK_SECRET": cp.SECRET, "RATE_LIMIT_ANONYMOUS": "100000000/minute",
               # No worker recycling mid-measurement: it would reset the senders' keep-alive connections.
               "GUNICORN_MAX_REQUESTS": "0"}
        with gunicorn_servers(1, env, workers=workers, threads=4) as (base,):
            for round_no in range(2):  # interleaved, so drift on a shared machine hits every endpoint alike
                deliveries = Deliveries(f"r{round_no}{os.getpid()}")
                run(base, healthz, clients=2, seconds=0.2)  # warm up every worker's pool
                rates["GET /healthz"].append(run(base, healthz, clients=args.clients, seconds=args.seconds))
                rates["webhook: new events"].append(run(base, deliveries.fresh, clients=args.clients,
                                                        seconds=args.seconds))
                rates["webhook: redeliveries"].append(run(base, deliveries.again, clients=args.clients,
                                                          seconds=args.seconds))
            import psycopg
            with psycopg.connect(url) as conn:
                counts = conn.execute("SELECT (SELECT count(*) FROM webhook_events), (SELECT count(*) FROM users),"
                                      " (SELECT count(*) FROM organization_memberships)").fetchone()

    trivial = sum(r["rps"] for r in rates["GET /healthz"]) / 2
    print(f"gunicorn: {workers} workers x 4 threads, {args.clients} keep-alive senders, 2 x {args.seconds:.0f} s per "
          "endpoint, interleaved")
    print(f"{'endpoint':<24} {'req/s':>8} {'ratio to /healthz':>18} {'p50 ms':>7} {'p99 ms':>7}  statuses")
    for name, runs in rates.items():
        rps = sum(r["rps"] for r in runs) / len(runs)
        statuses: dict[int, int] = {}
        for result in runs:
            for status, n in result["statuses"].items():
                statuses[status] = statuses.get(status, 0) + n
        p50 = max(r["p50_ms"] for r in runs)
        p99 = max(r["p99_ms"] for r in runs)
        print(f"{name:<24} {rps:>8.0f} {rps / trivial:>18.3f} {p50:>7.1f} {p99:>7.1f}  {statuses}")
    print(f"recorded: {counts[0]} events, {counts[1]} users, {counts[2]} memberships")


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
