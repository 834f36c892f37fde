#!/usr/bin/env bash
# Apache Kafka, KRaft mode, single node, bound to 127.0.0.1 only.
# Usage: kafka.sh start|stop|status|reset. Idempotent: start on a running broker does nothing.
# shellcheck source=deploy/local/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HOST=127.0.0.1
PORT="${BACKHAUL_KAFKA_PORT:-29092}"
CONTROLLER_PORT="${BACKHAUL_KAFKA_CONTROLLER_PORT:-29093}"
HOME_DIR="$STATE_DIR/kafka"
LIBS="$HOME_DIR/libs"
DATA="$HOME_DIR/data"
PIDFILE="$HOME_DIR/kafka.pid"
LOG="$HOME_DIR/kafka.log"
CONFIG="$HOME_DIR/server.properties"
POM="$ROOT/deploy/local/pom.xml"

ensure_java() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  local v
  v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  [ "${v:-0}" -ge 17 ] || die "Kafka 4 needs Java 17 or newer; found '${v:-none}'"
  command -v mvn >/dev/null || apt_install maven
}

ensure_jars() {
  local stamp
  stamp="$LIBS/.pom-$(sha1sum "$POM" | cut -c1-12)"
  [ -f "$stamp" ] && return 0
  ensure_java
  say "resolving Apache Kafka jars from Maven Central (once)"
  rm -rf "$LIBS"
  mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$LIBS" -DincludeScope=runtime >&2 \
    || die "mvn could not resolve Kafka from Maven Central (see output above)"
  touch "$stamp"
}

# A value for a .properties file: Java reads those as ISO-8859-1, so everything outside
# printable ASCII is written as \uXXXX and a backslash is doubled.
prop_value() {
  python3 -c '
import sys
out = []
for ch in sys.argv[1]:
    if ch == "\\":
        out.append("\\\\")
    elif " " <= ch <= "~":
        out.append(ch)
    else:
        units = ch.encode("utf-16-be", "surrogatepass")
        out.extend("\\u%02x%02x" % (units[i], units[i + 1]) for i in range(0, len(units), 2))
print("".join(out))' "$1"
}

# True when the pid file names our broker (its command line carries our config file).
running() { pid_is "$PIDFILE" "$CONFIG"; }

write_config() {
  mkdir -p "$DATA"
  cat > "$CONFIG" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$(prop_value "$DATA")
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=48
PROPS
}

start() {
  if running; then
    grep -Fq "listeners=PLAINTEXT://$HOST:$PORT," "$CONFIG" \
      || die "this checkout's kafka already runs (pid $(head -1 "$PIDFILE")) on another port than $PORT (BACKHAUL_KAFKA_PORT); stop it first: $0 stop"
    wait_port "$HOST" "$PORT" 60 || die "kafka runs (pid $(head -1 "$PIDFILE")) but does not answer on $HOST:$PORT, see $LOG"
    say "kafka already running (pid $(head -1 "$PIDFILE")) on $HOST:$PORT"; return 0
  fi
  rm -f "$PIDFILE"  # stale: the process is gone, or its pid now belongs to another program
  port_open "$HOST" "$PORT" && refuse_taken_port "$HOST" "$PORT" "Kafka" BACKHAUL_KAFKA_PORT
  port_open "$HOST" "$CONTROLLER_PORT" \
    && refuse_taken_port "$HOST" "$CONTROLLER_PORT" "Kafka's controller" BACKHAUL_KAFKA_CONTROLLER_PORT
  ensure_java
  ensure_jars
  write_config
  if [ ! -f "$DATA/meta.properties" ]; then
    local id
    id=$(LC_ALL=$UTF8_LOCALE java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    LC_ALL=$UTF8_LOCALE java -cp "$LIBS/*" -Dlog4j2.configurationFile="$ROOT/deploy/local/log4j2.yaml" \
      kafka.tools.StorageTool format --standalone -t "$id" -c "$CONFIG" >>"$LOG" 2>&1 \
      || die "kafka storage format failed, see $LOG"
  fi
  say "starting kafka on $HOST:$PORT"
  LC_ALL=$UTF8_LOCALE nohup java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/deploy/local/log4j2.yaml" \
    -cp "$LIBS/*" kafka.Kafka "$CONFIG" >>"$LOG" 2>&1 &
  echo $! > "$PIDFILE"
  if ! wait_port "$HOST" "$PORT" 60; then
    tail -20 "$LOG" >&2 || true
    die "kafka did not open $HOST:$PORT within 60 s, see $LOG"
  fi
  say "kafka ready on $HOST:$PORT (log: $LOG)"
}

stop() {
  if ! running; then say "kafka not running"; rm -f "$PIDFILE"; return 0; fi
  local pid; pid=$(head -1 "$PIDFILE")
  kill "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$PIDFILE"
  say "kafka stopped"
}

status() {
  if running && port_open "$HOST" "$PORT"; then
    echo "kafka: running (pid $(head -1 "$PIDFILE")) on $HOST:$PORT"
  else
    echo "kafka: stopped"; return 3
  fi
}

reset() { stop; rm -rf "$DATA"; say "kafka data removed"; }

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;; reset) reset ;;
  *) echo "usage: $0 start|stop|status|reset" >&2; exit 2 ;;
esac
