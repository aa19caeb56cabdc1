# Sourced by ./tasks test: starts a private PostgreSQL and Redis for the test suite and exports
# JUNTO_TEST_POSTGRES_URL and JUNTO_TEST_REDIS_URL. Both listen on 127.0.0.1 only, keep their data
# in a temporary folder and are stopped by stop_test_services (safe to call after a partial start).
#
# Ports: JUNTO_TEST_PG_PORT (default 54329) and JUNTO_TEST_REDIS_PORT (default 63799). A port that
# is already taken is an error, never a reason to use whatever server answers there.
#
# Any failure prints what went wrong (with the server's log) and returns non-zero, so that
# `./tasks test` (set -e) stops instead of running the tests without their services.
#
# Try it on its own, away from the default ports:
#   JUNTO_TEST_PG_PORT=55999 JUNTO_TEST_REDIS_PORT=63999 bash -c \
#     'source scripts/test-services.sh; start_test_services && stop_test_services'

_services_fail() {  # $1: message, $2: optional log file to show
  printf '\033[1;31mtest services: %s\033[0m\n' "$1" >&2
  if [ -n "${2:-}" ] && [ -f "$2" ]; then
    echo "--- last lines of $2:" >&2
    tail -n 30 "$2" >&2
  fi
  return 1
}

_port_in_use() {  # true if something accepts TCP connections on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_test_services() {
  local pgport=${JUNTO_TEST_PG_PORT:-54329} redisport=${JUNTO_TEST_REDIS_PORT:-63799}
  TEST_SERVICES_DIR=$(mktemp -d /tmp/junto-test-services.XXXXXX) || return 1
  chmod 755 "$TEST_SERVICES_DIR"
  _start_test_postgres "$pgport" || return 1
  _start_test_redis "$redisport" || return 1
  echo "test services: $JUNTO_TEST_POSTGRES_URL $JUNTO_TEST_REDIS_URL" >&2
}

_start_test_postgres() {  # $1: port
  local port=$1 pgbin pgdata=$TEST_SERVICES_DIR/pg
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$pgbin" ] || { _services_fail "PostgreSQL server binaries not found (Debian: postgresql)"; return 1; }
  _port_in_use "$port" && { _services_fail "port $port for PostgreSQL is already in use (set JUNTO_TEST_PG_PORT)"; return 1; }
  local run=()
  # initdb refuses to run as root: run the server as the postgres system user then.
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || { _services_fail "running as root, but there is no postgres user to run PostgreSQL as"; return 1; }
    run=(runuser -u postgres --)
  fi
  mkdir -p "$pgdata"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$pgdata"; fi
  "${run[@]}" "$pgbin/initdb" -D "$pgdata" -U junto --auth=trust -E UTF8 >"$TEST_SERVICES_DIR/initdb.log" 2>&1 \
    || { _services_fail "initdb failed" "$TEST_SERVICES_DIR/initdb.log"; return 1; }
  TEST_PG_CTL=("${run[@]}" "$pgbin/pg_ctl" -D "$pgdata")
  "${TEST_PG_CTL[@]}" -l "$pgdata/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $pgdata -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null \
    || { _services_fail "PostgreSQL did not start on port $port" "$pgdata/server.log"; return 1; }
  "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 10 \
    || { _services_fail "PostgreSQL started but does not accept connections on port $port" "$pgdata/server.log"; return 1; }
  export JUNTO_TEST_POSTGRES_URL="postgresql+asyncpg://junto@127.0.0.1:$port/postgres"
}

_start_test_redis() {  # $1: port
  local port=$1 pidfile=$TEST_SERVICES_DIR/redis.pid log=$TEST_SERVICES_DIR/redis.log
  command -v redis-server >/dev/null || { _services_fail "redis-server not found (Debian: redis-server)"; return 1; }
  _port_in_use "$port" && { _services_fail "port $port for Redis is already in use (set JUNTO_TEST_REDIS_PORT)"; return 1; }
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$TEST_SERVICES_DIR" \
    --daemonize yes --pidfile "$pidfile" --logfile "$log" \
    || { _services_fail "redis-server did not start" "$log"; return 1; }
  # --daemonize returns before the server binds: wait until OUR server (pid file) answers.
  local pid="" _
  for _ in $(seq 100); do
    [ -s "$pidfile" ] && pid=$(cat "$pidfile")
    if [ -n "$pid" ] && [ "$(redis-cli -p "$port" info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')" = "$pid" ]; then
      export JUNTO_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
      return 0
    fi
    sleep 0.1
  done
  _services_fail "Redis did not start on port $port" "$log"
}

stop_test_services() {
  [ -n "${TEST_SERVICES_DIR:-}" ] || return 0
  if [ -n "${TEST_PG_CTL+set}" ]; then
    "${TEST_PG_CTL[@]}" stop -m fast -w >/dev/null 2>&1 || true
  fi
  if [ -s "$TEST_SERVICES_DIR/redis.pid" ]; then
    local pid _
    pid=$(cat "$TEST_SERVICES_DIR/redis.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$TEST_SERVICES_DIR"
  unset TEST_SERVICES_DIR TEST_PG_CTL
}
