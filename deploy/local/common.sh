# Shared helpers for the local stack scripts. Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="${BACKHAUL_STATE_DIR:-$ROOT/.local}"
mkdir -p "$STATE_DIR"

say() { printf '[backhaul] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() {  # host port seconds what
  local i
  for ((i = 0; i < $3 * 5; i++)); do
    port_open "$1" "$2" && return 0
    sleep 0.2
  done
  return 1
}

apt_install() {  # packages...
  command -v apt-get >/dev/null || die "need $* but apt-get is not available; install them by hand"
  [ "$(id -u)" = 0 ] || die "need $* (apt-get install $*), which needs root"
  say "installing $* with apt-get"
  if [ ! -f "$STATE_DIR/.apt-updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
    touch "$STATE_DIR/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || die "apt-get install $* failed"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
