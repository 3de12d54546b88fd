# Sourced by shared_db_fails.sh (not run on its own).
#
# A throwaway plain PostgreSQL server for checking this example without dbsandbox:
# initdb into a fresh temporary directory, start on a free loopback port, create migrated
# databases, stop and remove everything on exit. As root the server runs as user
# `postgres` (PostgreSQL refuses to run as root).
#
#   pg_start                     start the server; sets PG_PORT and PG_TMP
#   pg_create_migrated_db NAME   create database NAME and apply migrations/*.sql in order
#   pg_stop                      stop the server and remove PG_TMP (installed as EXIT trap)
#
# Environment: PG_BIN, a directory with initdb/postgres/pg_ctl (default: `pg_config --bindir`,
# else the newest /usr/lib/postgresql/*/bin); PYTHON (default python3).

EXAMPLE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
PG_TMP=""
PG_PORT=""
PG_PID=""

is_pg_bin() {
  [[ -n "$1" && -x "$1/initdb" && -x "$1/postgres" && -x "$1/pg_ctl" ]]
}

find_pg_bin() {
  local dir found=""
  if [[ -n "${PG_BIN:-}" ]]; then
    is_pg_bin "$PG_BIN" && { echo "$PG_BIN"; return 0; }
    echo "error: PG_BIN=$PG_BIN does not contain initdb, postgres and pg_ctl" >&2
    return 1
  fi
  dir="$(pg_config --bindir 2>/dev/null || true)"
  is_pg_bin "$dir" && { echo "$dir"; return 0; }
  # Otherwise the last match: glob order puts the newest version last.
  for dir in /usr/lib/postgresql/*/bin /usr/local/pgsql/bin /opt/homebrew/opt/postgresql@*/bin \
             /usr/local/opt/postgresql@*/bin; do
    if is_pg_bin "$dir"; then found="$dir"; fi
  done
  [[ -n "$found" ]] && { echo "$found"; return 0; }
  echo "error: PostgreSQL server binaries (initdb, postgres, pg_ctl) not found; install them" \
       "(apt-get install postgresql, brew install postgresql@17) or set PG_BIN" >&2
  return 1
}

# Run a server binary as the right user: `postgres` when we are root, else ourselves.
as_pg_user() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_start() {
  PG_BIN="$(find_pg_bin)"
  PG_TMP="$(mktemp -d -t pytest-shared-pg.XXXXXX)"
  trap pg_stop EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if [[ "$(id -u)" == 0 ]]; then
    chown postgres: "$PG_TMP"
  fi
  as_pg_user "$PG_BIN/initdb" -D "$PG_TMP/data" -A trust -U postgres >"$PG_TMP/initdb.log" 2>&1 || {
    cat "$PG_TMP/initdb.log" >&2
    return 1
  }
  PG_PORT="$(free_port)"
  as_pg_user "$PG_BIN/postgres" -D "$PG_TMP/data" -k "$PG_TMP" -c port="$PG_PORT" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off >"$PG_TMP/postgres.log" 2>&1 &
  PG_PID=$!
  local _
  for _ in $(seq 1 100); do
    if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
      echo "throwaway server: $("$PG_BIN/postgres" --version) on 127.0.0.1:$PG_PORT"
      return 0
    fi
    if ! kill -0 "$PG_PID" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  echo "error: PostgreSQL did not start; its log:" >&2
  cat "$PG_TMP/postgres.log" >&2
  return 1
}

pg_create_migrated_db() {
  local name="$1" file
  psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
    -c "create database \"$name\""
  for file in "$EXAMPLE_DIR"/migrations/*.sql; do
    psql -X -q -v ON_ERROR_STOP=1 -1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$name" \
      -f "$file" >/dev/null
  done
}

pg_stop() {
  if [[ -n "$PG_PID" ]] && kill -0 "$PG_PID" 2>/dev/null; then
    as_pg_user "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1 ||
      kill -TERM "$PG_PID" 2>/dev/null || true
    wait "$PG_PID" 2>/dev/null || true
  fi
  PG_PID=""
  if [[ -n "$PG_TMP" ]]; then
    rm -rf "$PG_TMP"
  fi
  PG_TMP=""
}

# Run the example's suite with two xdist workers in random order (pytest-randomly; a fixed
# order can be had with --randomly-seed=N). pytest writes no cache or bytecode into the
# example directory.
run_suite() {
  (cd "$EXAMPLE_DIR" && PYTHONDONTWRITEBYTECODE=1 \
    "$PYTHON" -m pytest -n 2 -p randomly -p no:cacheprovider "$@")
}
