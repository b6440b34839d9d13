#!/usr/bin/env bash
# Runs a command with a throwaway redis-server: 127.0.0.1, a free port, a
# temporary directory, AOF on, noeviction. The command sees REDIS_URL (and
# REDIS_SERVER, REDIS_DIR and REDIS_PORT, so a test can restart the server
# on the same port and data). The server is stopped by its pid afterwards,
# whatever the command did. Installs redis-server with apt-get when it is
# missing and this is root; exits 3 when no server can be had.
#
#   scripts/with-redis.sh npm run test:redis
set -euo pipefail

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "with-redis: installing redis-server with apt-get" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } ||
      { echo "with-redis: could not install redis-server" >&2; exit 3; }
  else
    echo "with-redis: redis-server is not installed (and this is not root with apt-get)" >&2
    exit 3
  fi
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/with-redis.XXXXXX")
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
server=$(command -v redis-server)

stop() {
  local pid
  # The test may have restarted the server: the pid file names the last one.
  pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -rf "$dir"
}
trap stop EXIT

"$server" --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
  --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save '' \
  --appendonly yes --appendfsync everysec --maxmemory-policy noeviction
for _ in $(seq 100); do
  if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then break; fi
  sleep 0.05
done
if ! redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
  echo "with-redis: redis-server did not answer on port $port" >&2
  cat "$dir/redis.log" >&2 || true
  exit 3
fi

export REDIS_URL="redis://127.0.0.1:$port" REDIS_SERVER="$server" REDIS_DIR="$dir" REDIS_PORT="$port"
set +e
"$@"
status=$?
set -e
exit "$status"
