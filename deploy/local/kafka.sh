#!/usr/bin/env bash
# Apache Kafka, KRaft mode, single node, bound to 127.0.0.1 only.
# Usage: kafka.sh start|stop|status|reset. Idempotent: start on a running broker does nothing.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HOST=127.0.0.1
PORT="${BACKHAUL_KAFKA_PORT:-29092}"
CONTROLLER_PORT="${BACKHAUL_KAFKA_CONTROLLER_PORT:-29093}"
HOME_DIR="$STATE_DIR/kafka"
LIBS="$HOME_DIR/libs"
DATA="$HOME_DIR/data"
PIDFILE="$HOME_DIR/kafka.pid"
LOG="$HOME_DIR/kafka.log"
POM="$ROOT/deploy/local/pom.xml"

ensure_java() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  local v
  v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  [ "${v:-0}" -ge 17 ] || die "Kafka 4 needs Java 17 or newer; found '${v:-none}'"
  command -v mvn >/dev/null || apt_install maven
}

ensure_jars() {
  local stamp="$LIBS/.pom-$(sha1sum "$POM" | cut -c1-12)"
  [ -f "$stamp" ] && return 0
  ensure_java
  say "resolving Apache Kafka jars from Maven Central (once)"
  rm -rf "$LIBS"
  mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$LIBS" -DincludeScope=runtime >&2 \
    || die "mvn could not resolve Kafka from Maven Central (see output above)"
  touch "$stamp"
}

write_config() {
  mkdir -p "$DATA"
  cat > "$HOME_DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA
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
  if pid_alive "$PIDFILE"; then say "kafka already running (pid $(cat "$PIDFILE")) on $HOST:$PORT"; return 0; fi
  if port_open "$HOST" "$PORT"; then die "port $HOST:$PORT is taken by another process"; fi
  ensure_java
  ensure_jars
  write_config
  if [ ! -f "$DATA/meta.properties" ]; then
    local id
    id=$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    java -cp "$LIBS/*" -Dlog4j2.configurationFile="$ROOT/deploy/local/log4j2.yaml" \
      kafka.tools.StorageTool format --standalone -t "$id" -c "$HOME_DIR/server.properties" >>"$LOG" 2>&1 \
      || die "kafka storage format failed, see $LOG"
  fi
  say "starting kafka on $HOST:$PORT"
  nohup java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/deploy/local/log4j2.yaml" \
    -cp "$LIBS/*" kafka.Kafka "$HOME_DIR/server.properties" >>"$LOG" 2>&1 &
  echo $! > "$PIDFILE"
  if ! wait_port "$HOST" "$PORT" 60; then
    tail -20 "$LOG" >&2 || true
    die "kafka did not open $HOST:$PORT within 60 s, see $LOG"
  fi
  say "kafka ready on $HOST:$PORT (log: $LOG)"
}

stop() {
  if ! pid_alive "$PIDFILE"; then say "kafka not running"; rm -f "$PIDFILE"; return 0; fi
  local pid; pid=$(cat "$PIDFILE")
  kill "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$PIDFILE"
  say "kafka stopped"
}

status() {
  if pid_alive "$PIDFILE" && port_open "$HOST" "$PORT"; then
    echo "kafka: running (pid $(cat "$PIDFILE")) on $HOST:$PORT"
  else
    echo "kafka: stopped"; return 3
  fi
}

reset() { stop; rm -rf "$DATA"; say "kafka data removed"; }

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;; reset) reset ;;
  *) echo "usage: $0 start|stop|status|reset" >&2; exit 2 ;;
esac
