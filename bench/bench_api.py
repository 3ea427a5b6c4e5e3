"""API throughput under gunicorn, as ratios to a trivial endpoint measured on the same server in the same run.

- POST /api/audit with 10 formulas: authenticated, rate-limited, quota-counted, audited and logged (issues 5, 7).
- GET /api/billing: authenticated and rate-limited, one small read.
- GET /healthz: the trivial endpoint (the ceiling).

Also counts database round trips per request, in-process, from libpq's own protocol trace (each Sync or simple
Query message the client sends is one round trip).

    .venv/bin/python bench/bench_api.py [--seconds 5] [--clients 16]
"""
from __future__ import annotations

import argparse
import os
import tempfile

from common import ROOT, load, scratch_database

FORMULAS = ["=SUM(A1:A10)", "=VLOOKUP(B2,Sheet1!A:B,2,FALSE)", "=IF(C1>0,D1/C1,0)", "=A1*1.0825", "=TODAY()",
            "=IFERROR(E1/F1,0)", "=INDEX(G:G,MATCH(H1,I:I,0))", "=ROUND(J1*K1,2)", "=[Book2.xlsx]Data!A1",
            "=IF(A1>1,IF(A2>2,IF(A3>3,IF(A4>4,1,2),3),4),5)"]
AUDIT = {"formulas": FORMULAS, "context": {"sheetName": "Bench", "range": "A1:A10"}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()

    from tests.clerk_keys import ISSUER, SigningKey
    from tests.servers import gunicorn_servers

    key = SigningKey("kid-bench")
    with scratch_database() as url:
        import psycopg
        with psycopg.connect(url, autocommit=True) as conn:
            # Limits high enough that the benchmark measures the work, not 429s and 402s.
            conn.execute("INSERT INTO plans (id, name, monthly_audit_quota, requests_per_minute) "
                         "VALUES ('bench', 'Bench', NULL, 10000000)")
        # No worker recycling mid-measurement: it would reset the clients' keep-alive connections.
        env = {"DATABASE_URL": url, "CLERK_JWT_KEY": key.public_pem, "CLERK_ISSUER": ISSUER,
               "GUNICORN_MAX_REQUESTS": "0"}
        headers = {"Authorization": f"Bearer {key.token('user_bench', org_id='org_bench', org_role='org:admin', lifetime=3600)}"}
        workers = int(os.environ.get("BENCH_WORKERS", "2"))
        with gunicorn_servers(1, env, workers=workers, threads=4) as (base,):
            load(base, "GET", "/api/me", headers=headers, clients=1, seconds=0.2)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("UPDATE subscriptions SET plan_id = 'bench'")
            rates = {"GET /healthz": [], "GET /api/billing": [], "POST /api/audit": []}
            for _ in range(2):  # interleaved, so drift on a shared machine hits every endpoint alike
                rates["GET /healthz"].append(load(base, "GET", "/healthz", clients=args.clients, seconds=args.seconds))
                rates["GET /api/billing"].append(load(base, "GET", "/api/billing", headers=headers,
                                                      clients=args.clients, seconds=args.seconds))
                rates["POST /api/audit"].append(load(base, "POST", "/api/audit", body=AUDIT, headers=headers,
                                                     clients=args.clients, seconds=args.seconds))
        trips = round_trips(url, key)

    trivial = sum(r["rps"] for r in rates["GET /healthz"]) / 2
    print(f"gunicorn: {workers} workers x 4 threads, {args.clients} keep-alive clients, 2 x {args.seconds:.0f} s "
          "per endpoint, interleaved")
    print(f"{'endpoint':<20} {'req/s':>9} {'ratio to /healthz':>18} {'round trips/req':>16}  statuses")
    for name, runs in rates.items():
        rps = sum(r["rps"] for r in runs) / len(runs)
        statuses = {}
        for run in runs:
            for status, n in run["statuses"].items():
                statuses[status] = statuses.get(status, 0) + n
        print(f"{name:<20} {rps:>9.0f} {rps / trivial:>18.3f} {trips[name]:>16.1f}  {statuses}")


def round_trips(database_url: str, key) -> dict:
    """Round trips per request for each endpoint, counted from libpq's trace of the app's only connection."""
    from psycopg import pq

    from tests.clerk_keys import ISSUER
    from tests.conftest import make_app

    app = make_app(database_url, CLERK_JWT_KEY=key.public_pem, CLERK_ISSUER=ISSUER,
                   DB_POOL_MIN_SIZE=1, DB_POOL_MAX_SIZE=1)
    headers = {"Authorization": f"Bearer {key.token('user_trips', org_id='org_trips', org_role='org:admin')}"}
    client = app.test_client()
    client.get("/api/me", headers=headers)
    import psycopg
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE subscriptions SET plan_id = 'bench'")
    pool = app.extensions["db"].open()
    calls = {
        "GET /healthz": lambda: client.get("/healthz"),
        "GET /api/billing": lambda: client.get("/api/billing", headers=headers),
        "POST /api/audit": lambda: client.post("/api/audit", json=AUDIT, headers=headers),
    }
    counts = {}
    for name, call in calls.items():
        with tempfile.NamedTemporaryFile("w") as trace:
            # The pool holds exactly one connection, so every request below runs on the traced one.
            with pool.connection() as conn:
                conn.pgconn.trace(trace.fileno())
                conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            for _ in range(20):
                status = call().status_code
                assert status in (200, 201), (name, status)
            with pool.connection() as conn:
                conn.pgconn.untrace()  # flushes libpq's buffered trace
            counts[name] = (_sent(trace.name) - 1) / 20  # minus the pool's check of the final checkout
    app.extensions["db"].close()
    return counts


def _sent(trace_path: str) -> int:
    """Round trips so far: every Sync (extended protocol) or Query (simple protocol) message the client sent."""
    with open(trace_path, errors="replace") as handle:
        return sum(1 for line in handle if line.startswith("F") and ("\tSync" in line or "\tQuery\t" in line))


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
