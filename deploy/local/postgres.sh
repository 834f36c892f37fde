#!/usr/bin/env bash
# PostgreSQL from Debian's package, with its own data directory inside the project
# and its own port on 127.0.0.1. Usage: postgres.sh start|stop|status|reset.
# Idempotent: start on a running server does nothing. Auth is `trust` on loopback
# only: this is the local development stack, never exposed beyond 127.0.0.1.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HOST=127.0.0.1
# Below the kernel's ephemeral range (32768-60999), so no outgoing connection can hold it.
PORT="${BACKHAUL_PG_PORT:-25432}"
DATA="$STATE_DIR/pg"
LOG="$STATE_DIR/pg.log"
DB="${BACKHAUL_PG_DB:-backhaul}"
RUN_AS=()

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}

ensure_server() {
  BIN=$(find_bin) || { apt_install postgresql; BIN=$(find_bin) || die "postgresql installed but pg_ctl not found"; }
  # initdb and postgres refuse to run as root: run them as the package's 'postgres' user.
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user (is Debian's postgresql package installed?)"
    RUN_AS=(runuser -u postgres --)
  fi
}

pg() { "${RUN_AS[@]}" "$@"; }

start() {
  ensure_server
  if [ -f "$DATA/postmaster.pid" ] && pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    say "postgresql already running on $HOST:$PORT"; return 0
  fi
  if port_open "$HOST" "$PORT"; then die "port $HOST:$PORT is taken by another process"; fi
  if [ ! -f "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA"
    chmod 700 "$DATA"
    say "creating PostgreSQL cluster in $DATA"
    pg "$BIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null \
      || die "initdb failed"
    cat >> "$DATA/postgresql.conf" <<CONF
max_connections = 200
shared_buffers = 256MB
synchronous_commit = on
fsync = on
CONF
  fi
  [ "$(id -u)" = 0 ] && { touch "$LOG"; chown postgres:postgres "$LOG"; }
  say "starting postgresql on $HOST:$PORT"
  pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 -o "-h $HOST -p $PORT -k $DATA" start >/dev/null || { tail -20 "$LOG" >&2; die "postgresql did not start, see $LOG"; }
  pg "$BIN/psql" -h "$HOST" -p "$PORT" -U postgres -d postgres -qtAc \
    "SELECT 1 FROM pg_roles WHERE rolname='backhaul'" | grep -q 1 \
    || pg "$BIN/psql" -h "$HOST" -p "$PORT" -U postgres -d postgres -qc "CREATE ROLE backhaul LOGIN SUPERUSER"
  pg "$BIN/psql" -h "$HOST" -p "$PORT" -U postgres -d postgres -qtAc \
    "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1 \
    || pg "$BIN/psql" -h "$HOST" -p "$PORT" -U postgres -d postgres -qc "CREATE DATABASE $DB OWNER backhaul"
  say "postgresql ready on $HOST:$PORT, database $DB (log: $LOG)"
}

stop() {
  ensure_server
  if [ -f "$DATA/postmaster.pid" ] && pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    say "postgresql stopped"
  else
    say "postgresql not running"
  fi
}

status() {
  ensure_server
  if [ -f "$DATA/postmaster.pid" ] && pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    echo "postgresql: running on $HOST:$PORT"
  else
    echo "postgresql: stopped"; return 3
  fi
}

reset() { stop; rm -rf "$DATA"; say "postgresql data removed"; }

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;; reset) reset ;;
  *) echo "usage: $0 start|stop|status|reset" >&2; exit 2 ;;
esac
