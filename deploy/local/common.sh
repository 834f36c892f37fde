# shellcheck shell=bash
# Shared helpers for the local stack scripts. Sourced, not run.
# Every path is quoted: a checkout may live in a private folder whose path holds
# spaces or non-ASCII characters.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
STATE_DIR="${BACKHAUL_STATE_DIR:-$ROOT/.local}"
mkdir -p "$STATE_DIR"
STATE_DIR="$(cd "$STATE_DIR" && pwd -P)"
# Java reads file names in the locale's charset: without a UTF-8 locale a non-ASCII path becomes '?'.
export UTF8_LOCALE=C.UTF-8

say() { printf '[backhaul] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() {  # host port seconds
  local i
  for ((i = 0; i < $3 * 5; i++)); do
    port_open "$1" "$2" && return 0
    sleep 0.2
  done
  return 1
}

# The pid of the process listening on a TCP port, when this user may see it (empty otherwise).
port_pid() {  # port
  command -v ss >/dev/null || return 0
  ss -Htlnp "( sport = :$1 )" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1
}

describe_pid() {  # pid -> "pid N (command line, shortened)"
  local cmd
  cmd=$(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | cut -c1-120) || cmd=""
  printf 'pid %s (%s)' "$1" "${cmd:-unknown command}"
}

# Stops with a message naming the port, who holds it (if visible) and the variable that moves it.
refuse_taken_port() {  # host port what variable
  local pid holder="another process"
  pid=$(port_pid "$2")
  [ -n "$pid" ] && holder=$(describe_pid "$pid")
  die "$3 needs $1:$2, but it is taken by $holder; stop that process, or choose another port with $4=<port>"
}

# True when the pid file names a live process whose command line holds the given argument,
# so a pid reused after a reboot or a kill -9 is never mistaken for ours.
pid_is() {  # pidfile exact-argument
  [ -f "$1" ] || return 1
  local pid
  pid=$(head -1 "$1" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' '\n' < "/proc/$pid/cmdline" | grep -Fxq -- "$2"
}

# Every pid whose working directory is the given directory (PostgreSQL's processes all chdir
# to their data directory, so this finds a cluster's orphaned backends after a kill -9).
pids_in_dir() {  # dir
  local p cwd
  for p in /proc/[0-9]*; do
    cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
    [ "$cwd" = "$1" ] && echo "${p#/proc/}"
  done
  return 0
}

need_root_for() {  # packages... -> exits with what to install and how
  die "need $* and this user cannot install packages; ask an administrator to run: apt-get install -y $*  (then run this again)"
}

apt_install() {  # packages...
  command -v apt-get >/dev/null || die "need $* but apt-get is not available; install them with your system's package manager"
  [ "$(id -u)" = 0 ] || need_root_for "$@"
  say "installing $* with apt-get"
  if [ ! -f "$STATE_DIR/.apt-updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
    touch "$STATE_DIR/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || die "apt-get install $* failed"
}
