#!/usr/bin/env bash
# PostgreSQL from Debian's package: a cluster of its own for this checkout, on its own
# port on 127.0.0.1. Usage: postgres.sh start|stop|status|reset|where.
# Idempotent: start on a running server does nothing. Auth is `trust` on loopback
# only: this is the local development stack, never exposed beyond 127.0.0.1.
#
# Where the cluster lives. initdb and postgres refuse to run as root, so as root the
# cluster runs as Debian's `postgres` user, which cannot enter a checkout inside a private
# folder (a home directory is mode 700). As root the data directory is therefore kept
# under /var/lib/postgresql/backhaul/, one directory per checkout (named by a digest of
# the checkout's state directory, which it records in its file `checkout`); as any other
# user it is `.local/pg` inside the checkout, run as that user. `reset` removes it, and
# every `start` removes the directories of checkouts that no longer exist.
# The server listens on TCP only (no Unix socket: no stale socket file, no path-length
# limit); its settings are written to a file, never passed through a shell.
# shellcheck source=deploy/local/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HOST=127.0.0.1
# Below the kernel's ephemeral range (32768-60999), so no outgoing connection can hold it.
PORT="${BACKHAUL_PG_PORT:-25432}"
DB="${BACKHAUL_PG_DB:-backhaul}"
CLUSTERS=/var/lib/postgresql/backhaul
RUN_AS=()

if [ -n "${BACKHAUL_PG_DATA:-}" ]; then
  DATA="$(realpath -m -- "$BACKHAUL_PG_DATA")"
elif [ "$(id -u)" = 0 ]; then
  DATA="$CLUSTERS/$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-16)"
else
  DATA="$STATE_DIR/pg"
fi
LOG="$DATA.log"

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}

ensure_server() {
  BIN=$(find_bin) || { apt_install postgresql; BIN=$(find_bin) || die "postgresql installed but pg_ctl not found"; }
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user (is Debian's postgresql package installed?)"
    RUN_AS=(runuser -u postgres --)
  fi
}

# Runs a PostgreSQL program as the cluster's user, from / (that user may not enter the current folder).
pg() { (cd / && "${RUN_AS[@]}" "$@"); }

# The postmaster's pid when it runs on our data directory; a pid file left by a kill -9 or a
# reboot (its pid gone, or reused by another program) does not count.
postmaster_pid() {
  local pid
  pid=$(head -1 "$DATA/postmaster.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$DATA" ] || return 1
  echo "$pid"
}

# After a kill -9 of the postmaster its backends may linger on the shared memory, which stops
# a new postmaster from starting: end them, then drop the stale pid file.
clear_leftovers() {
  local pids
  mapfile -t pids < <(pids_in_dir "$DATA")
  if [ ${#pids[@]} -gt 0 ]; then
    say "ending processes left by a previous postgresql on $DATA: ${pids[*]}"
    kill -9 "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -z "$(pids_in_dir "$DATA")" ] && break; sleep 0.1; done
  fi
  rm -f "$DATA/postmaster.pid"
}

# Removes the clusters of checkouts that were deleted (none of their processes may run).
prune_orphans() {
  [ "$(id -u)" = 0 ] && [ -d "$CLUSTERS" ] || return 0
  local dir owner
  for dir in "$CLUSTERS"/*/; do
    dir="${dir%/}"
    [ -f "$dir/checkout" ] || continue
    owner=$(cat "$dir/checkout")
    [ -d "$owner" ] && continue
    [ -n "$(pids_in_dir "$dir")" ] && continue
    say "removing the cluster of a checkout that no longer exists ($owner): $dir"
    rm -rf -- "$dir" "$dir.log"
  done
}

write_settings() {
  # `port` and the listen address may change between starts, so this file is written every time.
  cat > "$DATA/backhaul.conf" <<CONF
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = ''
max_connections = 200
shared_buffers = 256MB
synchronous_commit = on
fsync = on
CONF
  [ ${#RUN_AS[@]} -gt 0 ] && chown postgres:postgres "$DATA/backhaul.conf"
  return 0
}

init_cluster() {
  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$CLUSTERS"
    chown postgres:postgres "$CLUSTERS"
    chmod 755 "$CLUSTERS"
  fi
  mkdir -p "$DATA"
  [ ${#RUN_AS[@]} -gt 0 ] && chown postgres:postgres "$DATA"
  chmod 700 "$DATA"
  say "creating PostgreSQL cluster in $DATA"
  pg "$BIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null || die "initdb failed"
  echo "include = 'backhaul.conf'" >> "$DATA/postgresql.conf"
  printf '%s\n' "$STATE_DIR" > "$DATA/checkout"
}

psql_q() { pg "$BIN/psql" -h "$HOST" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

start() {
  ensure_server
  if postmaster_pid >/dev/null; then
    local running_port
    running_port=$(sed -n 4p "$DATA/postmaster.pid")
    [ "$running_port" = "$PORT" ] \
      || die "this checkout's postgresql already runs on port $running_port, not $PORT (BACKHAUL_PG_PORT); stop it first: $0 stop"
    wait_port "$HOST" "$PORT" 30 || die "postgresql runs on $DATA but does not answer on $HOST:$PORT, see $LOG"
    say "postgresql already running on $HOST:$PORT ($DATA)"; return 0
  fi
  port_open "$HOST" "$PORT" && refuse_taken_port "$HOST" "$PORT" "PostgreSQL" BACKHAUL_PG_PORT
  prune_orphans
  [ -f "$DATA/PG_VERSION" ] || init_cluster
  clear_leftovers
  write_settings
  # Where the log lies outside the checkout, .local/pg.log points to it.
  [ "$LOG" = "$STATE_DIR/pg.log" ] || ln -sfn "$LOG" "$STATE_DIR/pg.log"
  touch "$LOG"
  [ ${#RUN_AS[@]} -gt 0 ] && chown postgres:postgres "$LOG"
  say "starting postgresql on $HOST:$PORT"
  pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null || { tail -20 "$LOG" >&2; die "postgresql did not start, see $LOG"; }
  psql_q -c "SELECT 1 FROM pg_roles WHERE rolname='backhaul'" | grep -q 1 \
    || psql_q -c "CREATE ROLE backhaul LOGIN SUPERUSER"
  # The database name goes through psql's own quoting (:'db' and :"db"), never through the shell.
  [ "$(echo "SELECT 1 FROM pg_database WHERE datname = :'db';" | psql_q -v db="$DB")" = 1 ] \
    || echo 'CREATE DATABASE :"db" OWNER backhaul;' | psql_q -v db="$DB" >/dev/null
  say "postgresql ready on $HOST:$PORT, database $DB (data: $DATA, log: $LOG)"
}

stop() {
  ensure_server
  if postmaster_pid >/dev/null; then
    pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null || die "postgresql did not stop, see $LOG"
    say "postgresql stopped"
  else
    say "postgresql not running"
  fi
  [ -d "$DATA" ] && clear_leftovers
  return 0
}

status() {
  ensure_server
  if postmaster_pid >/dev/null && port_open "$HOST" "$PORT"; then
    echo "postgresql: running on $HOST:$PORT ($DATA)"
  else
    echo "postgresql: stopped"; return 3
  fi
}

reset() {
  stop
  rm -rf -- "$DATA" "$LOG"
  [ -L "$STATE_DIR/pg.log" ] && rm -f "$STATE_DIR/pg.log"
  say "postgresql data removed ($DATA)"
}

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;; reset) reset ;;
  where) echo "$DATA" ;;
  *) echo "usage: $0 start|stop|status|reset|where" >&2; exit 2 ;;
esac
