#!/usr/bin/env python3
"""Writes a synthetic CI log of a given size with sparse database failures.

The filler imitates a verbose test run: application INFO/DEBUG lines with SQL, HTTP access
lines, pytest and go test progress (including `=== RUN` headers, which are prefilter triggers,
so the benchmark pays for header tracking as a real log does), and prose with near-miss words.
One failure block (a psycopg2 unique violation with DETAIL, a pgx deadlock, a 25P02 cascade, ...)
is inserted about every `--every` bytes. Deterministic: the same arguments give the same file.
"""
import argparse
import random

FILLER = [
    "2024-05-02T10:14:{s:02d}.{ms:03d}Z INFO  [worker-{w}] request served path=/api/v1/orders/{n} status=200 duration_ms={d}",
    "2024-05-02T10:14:{s:02d}.{ms:03d}Z DEBUG [sqlalchemy.engine] SELECT users.id, users.email FROM users WHERE users.id = %(id_1)s [cached since {d}s ago] {{'id_1': {n}}}",
    "2024-05-02T10:14:{s:02d}.{ms:03d}Z DEBUG [db] INSERT INTO events (kind, payload) VALUES ($1, $2) -- {n} rows affected",
    "tests/test_orders.py::test_case_{n} PASSED                                         [{p:3d}%]",
    "=== RUN   TestHandler_{n}",
    "--- PASS: TestHandler_{n} (0.0{d}s)",
    "127.0.0.1 - - [02/May/2024:10:14:{s:02d} +0000] \"GET /health HTTP/1.1\" 200 {d} \"-\" \"kube-probe/1.29\"",
    "    ok   example.com/shop/internal/cart{w}  0.{d}s  coverage: 8{w}.1% of statements",
    "warning: unused variable `retry_{n}` in src/jobs.rs:{d}: we deduplicate events before sending",
    "npm notice lockfile version {w}; cache at /home/runner/.npm/_cacache/index-v5/{n}",
]

FAILURES = [
    [
        "_____________________________ test_register_{n} ______________________________",
        "E       psycopg2.errors.UniqueViolation: duplicate key value violates unique constraint \"users_email_key\"",
        "E       DETAIL:  Key (email)=(user{n}@example.com) already exists.",
    ],
    [
        "=== RUN   TestTransfer_{n}",
        "    transfer_test.go:77: transfer: ERROR: deadlock detected (SQLSTATE 40P01)",
        "--- FAIL: TestTransfer_{n} (1.03s)",
    ],
    [
        "E       sqlalchemy.exc.IntegrityError: (psycopg2.errors.ForeignKeyViolation) insert or update on table \"orders\" violates foreign key constraint \"orders_user_id_fkey\"",
        "E       DETAIL:  Key (user_id)=({n}) is not present in table \"users\".",
        "E       sqlalchemy.exc.InternalError: (psycopg2.errors.InFailedSqlTransaction) current transaction is aborted, commands ignored until end of transaction block",
    ],
    [
        "Caused by: java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out after 30005ms.",
    ],
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--mib", type=int, default=1024, help="size in MiB")
    parser.add_argument("--every", type=int, default=1 << 20, help="bytes between failures")
    parser.add_argument("--no-headers", action="store_true",
                        help="leave out go test `=== RUN` filler (the only frequent prefilter hit)")
    args = parser.parse_args()
    rng = random.Random(42)
    filler = [f for f in FILLER if not (args.no_headers and f.startswith("=== RUN"))]
    # A pool of pre-rendered filler blocks keeps generation fast while lines still vary.
    blocks = []
    for _ in range(16):
        lines = []
        size = 0
        while size < args.every:
            line = rng.choice(filler).format(
                s=rng.randrange(60), ms=rng.randrange(1000), w=rng.randrange(9),
                n=rng.randrange(100000), d=rng.randrange(1, 999), p=rng.randrange(101))
            lines.append(line)
            size += len(line) + 1
        blocks.append("\n".join(lines) + "\n")
    target = args.mib << 20
    written = 0
    failures = 0
    with open(args.path, "w", encoding="utf-8") as out:
        while written < target:
            block = blocks[rng.randrange(len(blocks))]
            failure = "\n".join(rng.choice(FAILURES)).format(n=rng.randrange(100000)) + "\n"
            out.write(block)
            out.write(failure)
            written += len(block.encode()) + len(failure.encode())
            failures += 1
    print(f"wrote {written} bytes with {failures} failure blocks to {args.path}")


if __name__ == "__main__":
    main()
