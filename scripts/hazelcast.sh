#!/usr/bin/env bash
# Fetches Hazelcast (open-source member, with Maven) and runs a member on loopback for
# Turnpike's cluster mode. Used by the tests, the bench and the README's "Cluster mode".
#
#   scripts/hazelcast.sh fetch                  download the jar into .cache/hazelcast (once)
#   scripts/hazelcast.sh start [--port 5701]    start a member in the background, wait until it serves
#   scripts/hazelcast.sh stop  [--port 5701]    stop the member started on that port
#   scripts/hazelcast.sh run   [--port 5701]    run a member in the foreground (Ctrl-C stops it)
#   scripts/hazelcast.sh jar                    print the jar's path (fetching it if needed)
#
# Options: --members host:port,...  other members to join (default: only this one)
# Environment: HAZELCAST_HEAP (default 256m), HAZELCAST_FETCH_TIMEOUT seconds (default 300).
# Exit codes: 0 ok, 1 failure, 3 java (or, for a first fetch, mvn) is not installed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERSION=5.7.0
CACHE="$ROOT/.cache/hazelcast"
JAR="$CACHE/hazelcast-$VERSION.jar"
CONFIG="$ROOT/scripts/hazelcast/member.yaml"

say() { echo "hazelcast.sh: $*" >&2; }

command="${1:-}"
[ $# -gt 0 ] && shift
port=5701
members=""
while [ $# -gt 0 ]; do
  case "$1" in
    --port|--members)
      [ $# -ge 2 ] || { say "$1 needs a value"; exit 1; }
      if [ "$1" = --port ]; then port="$2"; else members="$2"; fi
      shift 2 ;;
    *) say "unknown option $1"; exit 1 ;;
  esac
done
[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || { say "--port must be a number from 1 to 65535, not \"$port\""; exit 1; }
members="${members:-127.0.0.1:$port}"
PIDFILE="$CACHE/member-$port.pid"
LOG="$CACHE/member-$port.log"

fetch() {
  [ -s "$JAR" ] && return 0
  command -v mvn >/dev/null || { say "mvn is not installed: cannot fetch com.hazelcast:hazelcast:$VERSION"; exit 3; }
  mkdir -p "$CACHE"
  say "fetching com.hazelcast:hazelcast:$VERSION with Maven into $CACHE"
  # A bounded wait: a registry that does not answer must not hang the tests.
  if ! timeout "${HAZELCAST_FETCH_TIMEOUT:-300}" mvn -q -B dependency:copy \
      -Dartifact="com.hazelcast:hazelcast:$VERSION" -DoutputDirectory="$CACHE" >&2; then
    rm -f "$JAR"
    say "Maven could not fetch com.hazelcast:hazelcast:$VERSION"
    exit 1
  fi
  [ -s "$JAR" ] || { say "Maven finished but $JAR is missing"; exit 1; }
}

need_java() {
  command -v java >/dev/null || { say "java is not installed: cannot run a Hazelcast member"; exit 3; }
}

# The java command line; small heap, serial GC: one member on a developer machine or in CI.
java_args() {
  echo -Xms64m "-Xmx${HAZELCAST_HEAP:-256m}" -XX:+UseSerialGC \
    "-Dhazelcast.config=$CONFIG" "-Dturnpike.hz.port=$port" "-Dturnpike.hz.members=$members" \
    -Djava.net.preferIPv4Stack=true \
    -cp "$JAR" com.hazelcast.core.server.HazelcastMemberStarter
}

running() { [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "$command" in
  fetch) fetch ;;
  jar) fetch; echo "$JAR" ;;
  run)
    need_java; fetch
    # shellcheck disable=SC2046
    exec java $(java_args)
    ;;
  start)
    need_java; fetch
    if running; then say "a member already runs on port $port (pid $(cat "$PIDFILE"))"; exit 0; fi
    # shellcheck disable=SC2046
    nohup java $(java_args) >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 600); do
      if grep -q "is STARTED" "$LOG" 2>/dev/null; then
        echo "hazelcast member ready on 127.0.0.1:$port (cluster turnpike, pid $(cat "$PIDFILE"), log $LOG)"
        exit 0
      fi
      if ! running; then say "the member exited; its log:"; cat "$LOG" >&2; rm -f "$PIDFILE"; exit 1; fi
      sleep 0.1
    done
    say "the member did not start within 60 s; log: $LOG"; exit 1
    ;;
  stop)
    if ! running; then say "no member runs on port $port"; rm -f "$PIDFILE"; exit 0; fi
    pid="$(cat "$PIDFILE")"
    kill "$pid"
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    rm -f "$PIDFILE"
    echo "hazelcast member on port $port stopped"
    ;;
  *)
    [ -z "$command" ] || [ "$command" = help ] || [ "$command" = --help ] || say "unknown command \"$command\""
    # The comment block at the top is the help text.
    sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    [ -z "$command" ] || [ "$command" = help ] || [ "$command" = --help ] || exit 1
    ;;
esac
