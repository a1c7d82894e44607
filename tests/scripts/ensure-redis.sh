#!/usr/bin/env bash
# Makes sure a Redis server answers on 127.0.0.1:6379 for the dedup-store tests.
#
# Idempotent: when Redis already answers, nothing is installed or started.
# COURIER_REDIS_URL overrides everything (the tests then use that server), so a developer
# or CI can point them at any Redis.
set -euo pipefail

if [ -n "${COURIER_REDIS_URL:-}" ]; then
  exit 0
fi

# redis-cli may be missing before the install below; a bare PING over /dev/tcp needs no
# client, and the reply check still tells a Redis from any other listener on the port.
pong() {
  local reply
  if command -v redis-cli >/dev/null 2>&1; then
    reply=$(timeout 5 redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) || return 1
    [ "$reply" = "PONG" ]
  else
    reply=$(timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/6379; printf "PING\r\n" >&3; head -n 1 <&3' 2>/dev/null) || return 1
    [ "${reply%$'\r'}" = "+PONG" ]
  fi
}

if pong; then
  exit 0
fi

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v redis-server >/dev/null 2>&1; then
  echo "ensure-redis: installing redis-server from Debian's packages" >&2
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  # policy-rc.d-less containers may try to start the service during install; that is harmless.
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >&2
fi

if pong; then
  exit 0
fi

echo "ensure-redis: starting redis-server" >&2
# No systemd on CI machines: start the server directly. Loopback only, and no RDB or AOF
# files: the tests need neither persistence nor a server reachable from the network.
log=/tmp/courier-redis.log
redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save "" --appendonly no \
  --dir /tmp --logfile "$log" >&2

deadline=$((SECONDS + 30))
until pong; do
  if [ $SECONDS -ge $deadline ]; then
    echo "ensure-redis: redis not answering after 30 s; last lines of $log:" >&2
    tail -n 30 "$log" >&2 || true
    exit 1
  fi
  sleep 0.2
done
