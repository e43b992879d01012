#!/usr/bin/env bash
# Local Apache Kafka (KRaft, single combined node) from the official jars.
#
#   deploy/kafka/kafka.sh start    fetch jars once, format storage once, start in
#                                  the background, wait until a client completes a
#                                  metadata round trip, print the bootstrap address
#   deploy/kafka/kafka.sh stop     stop exactly the broker this script started
#   deploy/kafka/kafka.sh status   running / stopped (exit 0 / 3)
#   deploy/kafka/kafka.sh bootstrap  print the bootstrap address
#   deploy/kafka/kafka.sh fetch    only resolve the jars (Maven Central)
#
# When KAFKA_BOOTSTRAP_SERVERS is set, that broker is used instead: start only
# waits for it and stop leaves it alone.
#
# Settings (environment): KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093),
# KAFKA_RUN_DIR (deploy/kafka/run), KAFKA_HEAP_OPTS (-Xms256m -Xmx512m),
# KAFKA_READY_TIMEOUT seconds (90).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIB="$HERE/lib"
RUN_DIR="${KAFKA_RUN_DIR:-$HERE/run}"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
HEAP="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-90}"
PID_FILE="$RUN_DIR/kafka.pid"
LOG_FILE="$RUN_DIR/kafka.log"
CONF="$RUN_DIR/server.properties"
DATA_DIR="$RUN_DIR/data"

log() { echo "kafka.sh: $*" >&2; }

python_bin() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"
  elif [[ -x "$ROOT/.venv/bin/python" ]]; then echo "$ROOT/.venv/bin/python"
  else echo python3
  fi
}

bootstrap() {
  echo "${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$PORT}"
}

fetch() {
  if [[ -f "$LIB/.complete" ]]; then return 0; fi
  command -v mvn >/dev/null || { log "Maven (mvn) is required to fetch the Kafka jars"; exit 1; }
  log "resolving Kafka jars from Maven Central into $LIB (once)"
  rm -rf "$LIB"
  mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$LIB"
  touch "$LIB/.complete"
}

# The broker we started: a live pid whose command line is our broker.
running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid; pid="$(cat "$PID_FILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  grep -q "kafka.Kafka" "/proc/$pid/cmdline" 2>/dev/null || return 1
  grep -q "$CONF" "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

# A real client round trip (metadata), not just an open port.
wait_ready() {
  "$(python_bin)" "$HERE/wait_ready.py" "$(bootstrap)" "$READY_TIMEOUT"
}

write_config() {
  mkdir -p "$RUN_DIR" "$DATA_DIR"
  sed -e "s|@PORT@|$PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
      -e "s|@DATA_DIR@|$DATA_DIR|g" "$HERE/server.properties.template" > "$CONF"
}

java_cmd() {
  # shellcheck disable=SC2086
  exec_or_run java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
       -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
       -cp "$LIB/*" "$@"
}

# `exec` for the broker itself (so the pid we record is the JVM's), plain
# run for the one-shot storage tool.
exec_or_run() { if [[ "${EXEC_JAVA:-0}" == 1 ]]; then exec "$@"; else "$@"; fi; }

format_storage() {
  if [[ -f "$DATA_DIR/meta.properties" ]]; then return 0; fi
  local cluster_id
  cluster_id="$("$(python_bin)" -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')"
  log "formatting KRaft storage (cluster $cluster_id)"
  java_cmd kafka.tools.StorageTool format -t "$cluster_id" -c "$CONF" >>"$LOG_FILE" 2>&1 \
    || { log "storage format failed; see $LOG_FILE"; tail -n 20 "$LOG_FILE" >&2; exit 1; }
}

start() {
  if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
    log "using the broker at $KAFKA_BOOTSTRAP_SERVERS (KAFKA_BOOTSTRAP_SERVERS is set)"
    wait_ready
    bootstrap
    return 0
  fi
  if pid="$(running_pid)"; then
    log "already running (pid $pid)"
    wait_ready
    bootstrap
    return 0
  fi
  command -v java >/dev/null || { log "Java 17+ is required"; exit 1; }
  fetch
  write_config
  : >"$LOG_FILE"
  format_storage
  local t0; t0=$(date +%s.%N)
  # setsid: the broker must outlive the shell that started it (and CI steps).
  setsid bash "$HERE/kafka.sh" _exec_broker >>"$LOG_FILE" 2>&1 < /dev/null &
  echo $! >"$PID_FILE"
  log "started broker pid $(cat "$PID_FILE"), log $LOG_FILE"
  if ! wait_ready; then
    log "broker did not become ready; last log lines:"
    tail -n 30 "$LOG_FILE" >&2
    stop || true
    exit 1
  fi
  log "ready in $(python3 -c "import sys;print(f'{float(sys.argv[2])-float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)") s"
  bootstrap
}

stop() {
  if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" && ! -f "$PID_FILE" ]]; then
    log "not stopping an external broker ($KAFKA_BOOTSTRAP_SERVERS)"
    return 0
  fi
  local pid
  if ! pid="$(running_pid)"; then
    log "not running"
    rm -f "$PID_FILE"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PID_FILE"; log "stopped"; return 0; }
    sleep 0.5
  done
  log "broker did not stop in 30 s; killing"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PID_FILE"
}

status() {
  if pid="$(running_pid)"; then
    echo "running (pid $pid, $(bootstrap))"
  else
    echo "stopped"
    return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  bootstrap) bootstrap ;;
  fetch) fetch ;;
  restart) stop; start ;;
  _exec_broker) EXEC_JAVA=1 java_cmd kafka.Kafka "$CONF" ;;
  *) echo "usage: $0 start|stop|status|bootstrap|fetch|restart" >&2; exit 2 ;;
esac
