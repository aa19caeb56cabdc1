# Sourced by ./tasks test: starts a private PostgreSQL and Redis for the test suite and exports
# their URLs. Both listen on 127.0.0.1 only, live in a temporary folder and stop on exit.

start_test_services() {
  TEST_SERVICES_DIR=$(mktemp -d /tmp/junto-test-services.XXXXXX)
  chmod 755 "$TEST_SERVICES_DIR"
  local pgbin
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$pgbin" ]; then echo "PostgreSQL server binaries not found" >&2; return 1; fi
  local pgport=${JUNTO_TEST_PG_PORT:-54329} redisport=${JUNTO_TEST_REDIS_PORT:-63799}
  local pgdata=$TEST_SERVICES_DIR/pg
  local run=()
  # initdb refuses to run as root: run the server as the postgres system user then.
  if [ "$(id -u)" -eq 0 ]; then run=(runuser -u postgres --); fi
  mkdir -p "$pgdata"
  [ "$(id -u)" -eq 0 ] && chown postgres "$pgdata"
  "${run[@]}" "$pgbin/initdb" -D "$pgdata" -U junto --auth=trust -E UTF8 >"$TEST_SERVICES_DIR/initdb.log" 2>&1
  "${run[@]}" "$pgbin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pgport -k $pgdata -c fsync=off -c synchronous_commit=off -c max_connections=200" \
    start >/dev/null
  TEST_PG_CTL=("${run[@]}" "$pgbin/pg_ctl" -D "$pgdata")
  export JUNTO_TEST_POSTGRES_URL="postgresql+asyncpg://junto@127.0.0.1:$pgport/postgres"

  redis-server --port "$redisport" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --pidfile "$TEST_SERVICES_DIR/redis.pid" --logfile "$TEST_SERVICES_DIR/redis.log"
  for _ in $(seq 50); do redis-cli -p "$redisport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export JUNTO_TEST_REDIS_URL="redis://127.0.0.1:$redisport/0"
  echo "test services: $JUNTO_TEST_POSTGRES_URL $JUNTO_TEST_REDIS_URL" >&2
}

stop_test_services() {
  [ -n "${TEST_SERVICES_DIR:-}" ] || return 0
  "${TEST_PG_CTL[@]}" stop -m fast >/dev/null 2>&1 || true
  if [ -f "$TEST_SERVICES_DIR/redis.pid" ]; then kill "$(cat "$TEST_SERVICES_DIR/redis.pid")" 2>/dev/null || true; fi
  rm -rf "$TEST_SERVICES_DIR"
}
