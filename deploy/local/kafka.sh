#!/usr/bin/env bash
# Apache Kafka, KRaft mode, bound to 127.0.0.1 only: one node (the default), or a cluster of
# BACKHAUL_KAFKA_BROKERS nodes (each broker and controller; 3 for a replicated cluster).
# Usage: kafka.sh start|stop|status|reset
#        kafka.sh start-node I | stop-node I | kill-node I
#                                      one node of a cluster (1..BACKHAUL_KAFKA_BROKERS): started, stopped
#                                      (SIGTERM: a controlled shutdown), or killed (SIGKILL); for rolling
#                                      restarts and fault tests
#        kafka.sh bootstrap            prints the internal listeners of every node (host:port,...)
#        kafka.sh add-gateway NAME     SCRAM credentials for a gateway, allowed to produce to `frames` only;
#                                      prints NAME and its password (the only time it is shown)
#        kafka.sh remove-gateway NAME  revoke them
#        kafka.sh add-plain-user NAME PASSWORD TOPIC
#                                      a SASL PLAIN user on the gateway listener, allowed to produce to TOPIC
#                                      only (a customer's stand-in for Event Hubs: NAME `$ConnectionString`,
#                                      PASSWORD the connection string); restarts a running broker when the
#                                      user list changed (PLAIN's users are read at start); a user given a
#                                      new TOPIC loses its right on the old one
#        kafka.sh remove-plain-user NAME
#                                      remove that user and its right (restarts a running broker)
# Idempotent: start on a running broker does nothing.
#
# A cluster (BACKHAUL_KAFKA_BROKERS=N, N > 1): node I listens on each port below + 10 * (I - 1) (node 1 on
# the ports themselves), keeps its data in .local/kafka-cluster/node-I (a single node's data stays in
# .local/kafka: the two never mix), and the N nodes form a static controller quorum. Replication
# factor: BACKHAUL_KAFKA_REPLICATION_FACTOR (default min(N, 3)), min.insync.replicas:
# BACKHAUL_KAFKA_MIN_INSYNC_REPLICAS (default 2 with a factor of 3 or more, else 1), for the broker's
# internal topics and its defaults; Backhaul creates its own topics with the same settings
# (backhaul/settings.py computes the same defaults).
#
# Listeners, all SASL/SCRAM-SHA-512 but the controller's:
#   INTERNAL  127.0.0.1:BACKHAUL_KAFKA_PORT (29092)          Backhaul's workers, as the super user `backhaul`
#   GATEWAY   127.0.0.1:BACKHAUL_KAFKA_GATEWAY_PORT (29094)  base-station gateways, each its own user, whose ACLs
#                                                            allow writing to `<BACKHAUL_TOPIC_PREFIX>frames` only;
#                                                            also SASL PLAIN for the users of add-plain-user
#                                                            (static JAAS users, kept in .local/kafka/plain.users)
#   CONTROLLER 127.0.0.1:BACKHAUL_KAFKA_CONTROLLER_PORT (29093), PLAINTEXT: KRaft cannot use SCRAM there; only
#              the broker and controllers may reach it (here: loopback)
# The `backhaul` user's password is made at the first format and kept in .local/kafka/internal.password (0600);
# Backhaul's processes read it from there (or from BACKHAUL_KAFKA_PASSWORD).
# A second broker from the same checkout (CI runs two, .ci/run): its own BACKHAUL_STATE_DIR and ports, and
# BACKHAUL_KAFKA_LIBS naming the first one's jars, so that Maven Central is not asked again.
# shellcheck source=deploy/local/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HOST=127.0.0.1
PORT="${BACKHAUL_KAFKA_PORT:-29092}"
CONTROLLER_PORT="${BACKHAUL_KAFKA_CONTROLLER_PORT:-29093}"
GATEWAY_PORT="${BACKHAUL_KAFKA_GATEWAY_PORT:-29094}"
BROKERS="${BACKHAUL_KAFKA_BROKERS:-1}"
[[ "$BROKERS" =~ ^[1-9]$ ]] || die "BACKHAUL_KAFKA_BROKERS is how many brokers to run, 1 to 9 (got '$BROKERS')"
PORT_STEP=10  # node I listens on each base port + PORT_STEP * (I - 1)
REPLICATION="${BACKHAUL_KAFKA_REPLICATION_FACTOR:-$((BROKERS < 3 ? BROKERS : 3))}"
[[ "$REPLICATION" =~ ^[1-9]$ && "$REPLICATION" -le "$BROKERS" ]] \
  || die "BACKHAUL_KAFKA_REPLICATION_FACTOR is 1 to the number of brokers ($BROKERS) (got '$REPLICATION')"
MIN_INSYNC="${BACKHAUL_KAFKA_MIN_INSYNC_REPLICAS:-$((REPLICATION >= 3 ? 2 : 1))}"
[[ "$MIN_INSYNC" =~ ^[1-9]$ && "$MIN_INSYNC" -le "$REPLICATION" ]] \
  || die "BACKHAUL_KAFKA_MIN_INSYNC_REPLICAS is 1 to the replication factor ($REPLICATION) (got '$MIN_INSYNC')"
INTERNAL_USER=backhaul
HOME_DIR="$STATE_DIR/kafka"              # the jars, the password, the admin config and PLAIN users
CLUSTER_DIR="$STATE_DIR/kafka-cluster"   # a cluster's nodes, each in node-I
LIBS="${BACKHAUL_KAFKA_LIBS:-$HOME_DIR/libs}"
SECRET="$HOME_DIR/internal.password"
ADMIN_CONFIG="$HOME_DIR/admin.properties"
PLAIN_USERS="$HOME_DIR/plain.users"  # NAME<TAB>PASSWORD<TAB>TOPIC a line, 0600

# Selects node I: its ports and files (DATA, PIDFILE, LOG, CONFIG, SCRAM_READY, NODE_PORT...).
node() {  # I
  NODE=$1
  NODE_PORT=$((PORT + PORT_STEP * (NODE - 1)))
  NODE_CONTROLLER_PORT=$((CONTROLLER_PORT + PORT_STEP * (NODE - 1)))
  NODE_GATEWAY_PORT=$((GATEWAY_PORT + PORT_STEP * (NODE - 1)))
  if [ "$BROKERS" = 1 ]; then NODE_HOME="$HOME_DIR"; else NODE_HOME="$CLUSTER_DIR/node-$NODE"; fi
  DATA="$NODE_HOME/data"
  PIDFILE="$NODE_HOME/kafka.pid"
  LOG="$NODE_HOME/kafka.log"
  CONFIG="$NODE_HOME/server.properties"
  SCRAM_READY="$DATA/.scram-ready"
}
node 1
declare -A LAUNCH_OFFSET=()

node_arg() {  # I -> checked I
  [[ "${1:-}" =~ ^[1-9]$ && "$1" -le "$BROKERS" ]] || die "a node is 1 to $BROKERS (BACKHAUL_KAFKA_BROKERS) (got '${1:-}')"
  echo "$1"
}

bootstrap_list() {  # every node's internal listener, host:port,...
  local i out=""
  for ((i = 1; i <= BROKERS; i++)); do out+="${out:+,}$HOST:$((PORT + PORT_STEP * (i - 1)))"; done
  echo "$out"
}

quorum_voters() {  # 1@host:port,2@host:port,...
  local i out=""
  for ((i = 1; i <= BROKERS; i++)); do out+="${out:+,}$i@$HOST:$((CONTROLLER_PORT + PORT_STEP * (i - 1)))"; done
  echo "$out"
}
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

internal_password() {
  if [ ! -s "$SECRET" ]; then
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$SECRET")
  fi
  cat "$SECRET"
}

jaas() {  # user password
  printf 'org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";' "$1" "$2"
}

# PlainLoginModule's server side: one user_NAME="PASSWORD" option a PLAIN user (Kafka's JAAS parser
# takes '$' in an option name, so `$ConnectionString` is a user like any other).
plain_jaas() {
  local name password _topic
  printf 'org.apache.kafka.common.security.plain.PlainLoginModule required'
  if [ -f "$PLAIN_USERS" ]; then
    while IFS=$'\t' read -r name password _topic; do
      if [ -n "$name" ]; then printf ' user_%s="%s"' "$name" "$password"; fi
    done < "$PLAIN_USERS"
  fi
  printf ';'
}

write_config() {  # for the selected node
  mkdir -p "$DATA" "$HOME_DIR"
  local password quorum
  password=$(internal_password)
  if [ "$BROKERS" = 1 ]; then
    quorum="controller.quorum.bootstrap.servers=$HOST:$NODE_CONTROLLER_PORT"
  else
    quorum="controller.quorum.voters=$(quorum_voters)"
  fi
  (umask 077 && cat > "$CONFIG" <<PROPS
process.roles=broker,controller
node.id=$NODE
$quorum
listeners=INTERNAL://$HOST:$NODE_PORT,GATEWAY://$HOST:$NODE_GATEWAY_PORT,CONTROLLER://$HOST:$NODE_CONTROLLER_PORT
advertised.listeners=INTERNAL://$HOST:$NODE_PORT,GATEWAY://$HOST:$NODE_GATEWAY_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:SASL_PLAINTEXT,GATEWAY:SASL_PLAINTEXT
inter.broker.listener.name=INTERNAL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.internal.scram-sha-512.sasl.jaas.config=$(jaas "$INTERNAL_USER" "$password")
listener.name.gateway.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.gateway.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.gateway.plain.sasl.jaas.config=$(prop_value "$(plain_jaas)")
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
# ANONYMOUS is the broker itself on the controller listener (PLAINTEXT)
super.users=User:$INTERNAL_USER;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
log.dirs=$(prop_value "$DATA")
num.partitions=4
default.replication.factor=$REPLICATION
min.insync.replicas=$MIN_INSYNC
offsets.topic.replication.factor=$REPLICATION
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=$REPLICATION
transaction.state.log.min.isr=$MIN_INSYNC
share.coordinator.state.topic.replication.factor=$REPLICATION
share.coordinator.state.topic.min.isr=$MIN_INSYNC
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=48
PROPS
  )
  (umask 077 && cat > "$ADMIN_CONFIG" <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$(jaas "$INTERNAL_USER" "$password")
PROPS
  )
}

# The cluster's id: one for every node of a cluster (kept beside them), a new one for a single node.
cluster_id() {
  if [ "$BROKERS" = 1 ]; then
    LC_ALL=$UTF8_LOCALE java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1
    return
  fi
  mkdir -p "$CLUSTER_DIR"
  if [ ! -s "$CLUSTER_DIR/cluster.id" ]; then
    LC_ALL=$UTF8_LOCALE java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1 \
      > "$CLUSTER_DIR/cluster.id"
  fi
  cat "$CLUSTER_DIR/cluster.id"
}

# Formats (once) and launches the selected node; returns without waiting for its port.
launch_node() {
  if running; then
    grep -Fq "listeners=INTERNAL://$HOST:$NODE_PORT," "$CONFIG" \
      || die "this checkout's kafka node $NODE already runs (pid $(head -1 "$PIDFILE")) on another port than $NODE_PORT (BACKHAUL_KAFKA_PORT); stop it first: $0 stop"
    return 0
  fi
  rm -f "$PIDFILE"  # stale: the process is gone, or its pid now belongs to another program
  port_open "$HOST" "$NODE_PORT" && refuse_taken_port "$HOST" "$NODE_PORT" "Kafka" BACKHAUL_KAFKA_PORT
  port_open "$HOST" "$NODE_CONTROLLER_PORT" \
    && refuse_taken_port "$HOST" "$NODE_CONTROLLER_PORT" "Kafka's controller" BACKHAUL_KAFKA_CONTROLLER_PORT
  port_open "$HOST" "$NODE_GATEWAY_PORT" \
    && refuse_taken_port "$HOST" "$NODE_GATEWAY_PORT" "Kafka's gateway listener" BACKHAUL_KAFKA_GATEWAY_PORT
  if [ -f "$DATA/meta.properties" ] && [ ! -f "$SCRAM_READY" ]; then
    say "kafka's data predates authenticated listeners: removing it (topics are created again on first use)"
    rm -rf "$DATA"
  fi
  write_config
  if [ ! -f "$DATA/meta.properties" ]; then
    local id standalone=()
    id=$(cluster_id)
    [ "$BROKERS" = 1 ] && standalone=(--standalone)
    # The super user's SCRAM credentials are written into the metadata log at format time.
    LC_ALL=$UTF8_LOCALE java -cp "$LIBS/*" -Dlog4j2.configurationFile="$ROOT/deploy/local/log4j2.yaml" \
      kafka.tools.StorageTool format "${standalone[@]}" -t "$id" -c "$CONFIG" \
      --add-scram "SCRAM-SHA-512=[name=$INTERNAL_USER,password=$(internal_password)]" >>"$LOG" 2>&1 \
      || die "kafka storage format failed (node $NODE), see $LOG"
    touch "$SCRAM_READY"
  fi
  local heap=768m
  [ "$BROKERS" = 1 ] || heap=512m  # three JVMs on a small machine
  say "starting kafka node $NODE of $BROKERS on $HOST:$NODE_PORT"
  LAUNCH_OFFSET[$NODE]=$(stat -c %s "$LOG" 2>/dev/null || echo 0)  # wait_node reads this launch's lines only
  LC_ALL=$UTF8_LOCALE nohup java -Xms128m -Xmx$heap -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/deploy/local/log4j2.yaml" \
    -cp "$LIBS/*" kafka.Kafka "$CONFIG" >>"$LOG" 2>&1 &
  echo $! > "$PIDFILE"
}

wait_node() {  # waits for the selected node's internal listener; says why and returns 1 when it will not open
  # A busy machine (two cores shared with other work) has been seen taking over a minute to start the JVM.
  # A port can be taken between the check in launch_node and the JVM's bind (a client socket given it as
  # its ephemeral port is invisible to port_open): Kafka then logs the bind failure and never listens,
  # so the wait stops as soon as the log says so or the process is gone, naming the port.
  local i since=${LAUNCH_OFFSET[$NODE]:-$(stat -c %s "$LOG" 2>/dev/null || echo 0)} refused pid
  pid=$(head -1 "$PIDFILE" 2>/dev/null || true)
  for ((i = 0; i < 180 * 5; i++)); do
    port_open "$HOST" "$NODE_PORT" && return 0
    refused=$(tail -c +$((since + 1)) "$LOG" 2>/dev/null | grep -om1 'failed to bind to [^ ]*: [^.]*' || true)
    if [ -n "$refused" ]; then
      say "error: kafka node $NODE could not start: it $refused (taken after the check; start again, or choose other ports with BACKHAUL_KAFKA_PORT, BACKHAUL_KAFKA_CONTROLLER_PORT and BACKHAUL_KAFKA_GATEWAY_PORT), see $LOG"
      return 1
    fi
    # The pid, not `running`: until the launched shell has exec'd java its command line is still kafka.sh's.
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      tail -20 "$LOG" >&2 || true
      say "error: kafka node $NODE exited before opening $HOST:$NODE_PORT, see $LOG"
      return 1
    fi
    sleep 0.2
  done
  tail -20 "$LOG" >&2 || true
  say "error: kafka node $NODE did not open $HOST:$NODE_PORT within 180 s, see $LOG"
  return 1
}

start() {
  local i j all_running=1
  for ((i = 1; i <= BROKERS; i++)); do node "$i"; running || all_running=0; done
  ensure_java
  ensure_jars
  # The nodes of a cluster start together: a controller quorum needs a majority of them.
  for ((i = 1; i <= BROKERS; i++)); do node "$i"; launch_node; done
  for ((i = 1; i <= BROKERS; i++)); do
    node "$i"
    if ! wait_node; then  # no half-started cluster is left behind waiting for a quorum
      for ((j = 1; j <= BROKERS; j++)); do node "$j"; stop_node TERM & done
      wait
      exit 1
    fi
  done
  if [ "$all_running" = 1 ]; then
    say "kafka already running on $(bootstrap_list)"
  else
    say "kafka ready on $(bootstrap_list) (log: $LOG)"
  fi
}

start_node() {  # I
  node "$(node_arg "$1")"
  ensure_java
  ensure_jars
  launch_node
  wait_node || { stop_node TERM; exit 1; }
  say "kafka node $NODE ready on $HOST:$NODE_PORT"
}

stop_node() {  # signal; the selected node
  if ! running; then rm -f "$PIDFILE"; return 0; fi
  local pid; pid=$(head -1 "$PIDFILE")
  kill "-$1" "$pid"
  # A controlled shutdown moves the node's leaderships first: give it 30 s.
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$PIDFILE"
}

stop() {
  local i any=0
  for ((i = 1; i <= BROKERS; i++)); do node "$i"; running && any=1; done
  if [ "$any" = 0 ]; then
    for ((i = 1; i <= BROKERS; i++)); do node "$i"; rm -f "$PIDFILE"; done
    say "kafka not running"; return 0
  fi
  # Together: a cluster's last nodes would otherwise wait for a quorum that is gone.
  for ((i = 1; i <= BROKERS; i++)); do node "$i"; stop_node TERM & done
  wait
  say "kafka stopped"
}

status() {
  local i down=0
  for ((i = 1; i <= BROKERS; i++)); do
    node "$i"
    if running && port_open "$HOST" "$NODE_PORT"; then
      if [ "$BROKERS" = 1 ]; then
        echo "kafka: running (pid $(head -1 "$PIDFILE")) on $HOST:$NODE_PORT"
      else
        echo "kafka node $NODE: running (pid $(head -1 "$PIDFILE")) on $HOST:$NODE_PORT"
      fi
    else
      down=1
      if [ "$BROKERS" = 1 ]; then echo "kafka: stopped"; else echo "kafka node $NODE: stopped"; fi
    fi
  done
  [ "$down" = 0 ] || return 3
}

reset() {
  local i
  stop
  for ((i = 1; i <= BROKERS; i++)); do node "$i"; rm -rf "$DATA"; done
  [ "$BROKERS" = 1 ] || rm -f "$CLUSTER_DIR/cluster.id"
  say "kafka data removed"
}

any_running() {
  local i
  for ((i = 1; i <= BROKERS; i++)); do node "$i"; running && return 0; done
  return 1
}

# Runs one of Kafka's admin tools against the internal listener, as the super user.
admin_tool() {  # class args...
  any_running || die "kafka is not running: $0 start"
  LC_ALL=$UTF8_LOCALE java -cp "$LIBS/*" -Dlog4j2.configurationFile="$ROOT/deploy/local/log4j2.yaml" "$1" \
    --bootstrap-server "$(bootstrap_list)" --command-config "$ADMIN_CONFIG" "${@:2}"
}

gateway_name() {  # name -> checked name
  [[ "${1:-}" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] \
    || die "a gateway name is 1-64 letters, digits, '.', '_' or '-' (got '${1:-}')"
  [ "$1" != "$INTERNAL_USER" ] || die "'$INTERNAL_USER' is Backhaul's own user, not a gateway"
  echo "$1"
}

add_gateway() {
  local name password frames
  name=$(gateway_name "${1:-}")
  password="${BACKHAUL_GATEWAY_PASSWORD:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
  frames="${BACKHAUL_TOPIC_PREFIX:-}frames"
  admin_tool org.apache.kafka.tools.ConfigCommand --alter --entity-type users --entity-name "$name" \
    --add-config "SCRAM-SHA-512=[password=$password]" >/dev/null || die "could not create gateway $name"
  admin_tool org.apache.kafka.tools.AclCommand --add --allow-principal "User:$name" \
    --operation Write --operation Describe --topic "$frames" >/dev/null || die "could not grant $name on $frames"
  say "gateway $name may produce to $frames on $HOST:$GATEWAY_PORT (SASL_PLAINTEXT, SCRAM-SHA-512)"
  printf '%s %s\n' "$name" "$password"
}

remove_gateway() {
  local name
  name=$(gateway_name "${1:-}")
  admin_tool org.apache.kafka.tools.AclCommand --remove --force --allow-principal "User:$name" \
    --operation Write --operation Describe --topic "${BACKHAUL_TOPIC_PREFIX:-}frames" >/dev/null || true
  # The credential is overwritten with a password nobody knows rather than deleted. Kafka 4.4.0, restarted
  # after a REMOVE_USER_SCRAM_CREDENTIAL_RECORD, has been seen rejecting the `backhaul` user's own password
  # (reproduced: the 7,000-record metadata log of a test run, cut just before such a removal, then
  # remove-gateway, stop, start: the backhaul user is refused; the same with this overwrite: accepted;
  # a short log does not show it). The gateway is locked out all the same.
  admin_tool org.apache.kafka.tools.ConfigCommand --alter --entity-type users --entity-name "$name" \
    --add-config "SCRAM-SHA-512=[password=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')]" >/dev/null \
    || die "could not remove gateway $name"
  say "gateway $name removed"
}

plain_name() {  # name -> checked name
  [[ "${1:-}" =~ ^[A-Za-z0-9\$][A-Za-z0-9.\$_-]{0,63}$ ]] \
    || die "a PLAIN user name is 1-64 letters, digits, '\$', '.', '_' or '-' (got '${1:-}')"
  printf '%s' "$1"
}

plain_topic_of() {  # name -> the topic it is listed with, or nothing
  [ -f "$PLAIN_USERS" ] && awk -F '\t' -v n="$1" '$1 == n { print $3 }' "$PLAIN_USERS"
  return 0
}

revoke_plain() {  # name topic
  admin_tool org.apache.kafka.tools.AclCommand --remove --force --allow-principal "User:$1" \
    --operation Write --operation Describe --topic "$2" >/dev/null || die "could not revoke $1 on $2"
}

add_plain_user() {  # name password topic
  local name password="${2:-}" topic="${3:-}" line old_topic
  name=$(plain_name "${1:-}")
  [ "$name" != "$INTERNAL_USER" ] || die "'$INTERNAL_USER' is Backhaul's own user"
  # The password goes between JAAS double quotes and into a tab-separated file.
  [[ -n "$password" && "$password" != *[\"\\$'\t\n']* ]] \
    || die "a PLAIN password is not empty and holds no '\"', backslash, tab or newline"
  [[ "$topic" =~ ^[A-Za-z0-9._-]{1,249}$ ]] || die "a topic is 1-249 letters, digits, '.', '_' or '-' (got '$topic')"
  line=$(printf '%s\t%s\t%s' "$name" "$password" "$topic")
  old_topic=$(plain_topic_of "$name")
  if ! grep -Fxq -- "$line" "$PLAIN_USERS" 2>/dev/null; then
    mkdir -p "$HOME_DIR"
    touch "$PLAIN_USERS"
    (umask 077 && { awk -F '\t' -v n="$name" '$1 != n' "$PLAIN_USERS"; printf '%s\n' "$line"; } > "$PLAIN_USERS.new")
    mv "$PLAIN_USERS.new" "$PLAIN_USERS"
    say "PLAIN users changed: the broker reads them at start"
    stop
  fi
  start
  if [ -n "$old_topic" ] && [ "$old_topic" != "$topic" ]; then
    revoke_plain "$name" "$old_topic"
  fi
  admin_tool org.apache.kafka.tools.AclCommand --add --allow-principal "User:$name" \
    --operation Write --operation Describe --topic "$topic" >/dev/null || die "could not grant $name on $topic"
  say "PLAIN user $name may produce to $topic on $HOST:$GATEWAY_PORT (SASL_PLAINTEXT)"
}

remove_plain_user() {  # name
  local name topic
  name=$(plain_name "${1:-}")
  topic=$(plain_topic_of "$name")
  [ -n "$topic" ] || die "no PLAIN user $name"
  (umask 077 && awk -F '\t' -v n="$name" '$1 != n' "$PLAIN_USERS" > "$PLAIN_USERS.new")
  mv "$PLAIN_USERS.new" "$PLAIN_USERS"
  stop
  start
  revoke_plain "$name" "$topic"
  say "PLAIN user $name removed"
}

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;; reset) reset ;;
  start-node) start_node "${2:-}" ;;
  stop-node) node "$(node_arg "${2:-}")"; stop_node TERM; say "kafka node $NODE stopped" ;;
  kill-node) node "$(node_arg "${2:-}")"; stop_node KILL; say "kafka node $NODE killed" ;;
  bootstrap) bootstrap_list ;;
  add-gateway) add_gateway "${2:-}" ;; remove-gateway) remove_gateway "${2:-}" ;;
  add-plain-user) add_plain_user "${2:-}" "${3:-}" "${4:-}" ;;
  remove-plain-user) remove_plain_user "${2:-}" ;;
  *) echo "usage: $0 start|stop|status|reset|start-node I|stop-node I|kill-node I|bootstrap|add-gateway NAME|remove-gateway NAME|add-plain-user NAME PASSWORD TOPIC|remove-plain-user NAME" >&2
     exit 2 ;;
esac
