#!/usr/bin/env bash
# `make bench-peers`: courier from Python, Node and Kotlin against the libraries each
# ecosystem would otherwise pick (requests, httpx, aiohttp, pika, aio-pika; undici,
# amqplib; OkHttp, the RabbitMQ Java client), in one run, against one local nginx
# (`return 200`) and the local RabbitMQ. Release builds only: courierkit is built with
# --release into a virtualenv of its own (.bench-venv), the Node addon and the Kotlin
# JAR by `dist.sh node kotlin`; the peers are pinned
# (requirements.txt, node/package-lock.json, kotlin/pom.xml). Prints one table with ratios and the goals, and writes
# bench/peers/latest.json. Nothing here runs in `make test`: timings never go into tests.
#
# Usage: bench/peers/run.sh [python] [node] [kotlin] [memory]   (default: all four)
#   memory: Python's, Node's and Kotlin's memory figures (memory.py, node/memory.mjs,
#           kotlin/.../Memory.kt), printed as JSON lines, not in the table
#   BENCH_ROUNDS=N   rounds per workload, alternating peer and courier (default 3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/courier/target}"
rounds="${BENCH_ROUNDS:-3}"
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(python node kotlin memory)
work=$(mktemp -d)
nginx_pid=""
cleanup() {
  [ -z "$nginx_pid" ] || kill "$nginx_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== bench-peers: %s\033[0m  (%s)\n' "$*" "$(date +%T)"; }

step "upstream: nginx, one worker, return 200, no access log, loopback only"
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bench-peers: nginx is not installed and this is not root: apt-get install nginx-light" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
  # Debian starts the packaged service on port 80; this benchmark runs its own.
  systemctl disable --now nginx >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || true
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$port;
    location / { return 200 "ok"; }
  }
}
EOF
"$nginx_bin" -c "$work/nginx/nginx.conf" -p "$work/nginx" &
nginx_pid=$!
upstream="http://127.0.0.1:$port"
for _ in $(seq 50); do
  curl -fsS "$upstream/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$upstream/" >/dev/null || { echo "bench-peers: nginx did not answer on $upstream" >&2; exit 1; }
echo "upstream: $upstream"

step "RabbitMQ"
amqp=$(bash tests/scripts/ensure-rabbitmq.sh)
echo "broker: ${amqp/\/\/*@///***@}"

rows="$work/rows.jsonl"
: >"$rows"
for lang in "${langs[@]}"; do
  case "$lang" in
    python)
      step "python: pinned peers and a release courierkit in .bench-venv"
      [ -x .bench-venv/bin/python ] || python3 -m venv .bench-venv
      .bench-venv/bin/pip install -q --disable-pip-version-check -r "$here/requirements.txt"
      (cd python && VIRTUAL_ENV="$root/.bench-venv" PATH="$root/.bench-venv/bin:$PATH" maturin develop -q --release)
      step "python: $rounds rounds per workload"
      .bench-venv/bin/python "$here/python_peers.py" --upstream "$upstream" --amqp "$amqp" --rounds "$rounds" >>"$rows"
      ;;
    node)
      step "node: pinned peers and a release courierkit addon"
      # dist.sh leaves the release addon in node/, where peers.mjs loads it from.
      bash scripts/dist.sh node
      (cd "$here/node" && npm ci --no-fund --no-audit --loglevel=error)
      step "node: $rounds rounds per workload"
      node "$here/node/peers.mjs" --upstream "$upstream" --amqp "$amqp" --rounds "$rounds" >>"$rows"
      ;;
    memory)
      # 10,000 connections in flight per process: the soft descriptor limit goes to the hard one.
      ulimit -n "$(ulimit -Hn)"
      step "memory (python): unconfirmed publishes, GETs in flight, dedup bytes per id"
      [ -x .bench-venv/bin/python ] || python3 -m venv .bench-venv
      .bench-venv/bin/pip install -q --disable-pip-version-check -r "$here/requirements.txt"
      (cd python && VIRTUAL_ENV="$root/.bench-venv" PATH="$root/.bench-venv/bin:$PATH" maturin develop -q --release)
      .bench-venv/bin/python "$here/memory.py" --amqp "$amqp" | tee "$work/memory.jsonl"
      step "memory (node): unconfirmed publishes against amqplib, GETs in flight against undici"
      bash scripts/dist.sh node
      (cd "$here/node" && npm ci --no-fund --no-audit --loglevel=error)
      node "$here/node/memory.mjs" --amqp "$amqp" | tee -a "$work/memory.jsonl"
      step "memory (kotlin): unconfirmed publishes against the Java client, GETs in flight against OkHttp"
      bash scripts/dist.sh kotlin
      mvn -B -q -ntp -f "$here/kotlin/pom.xml" compile
      python3 "$here/slow_upstream.py" 2 >"$work/slow.port" &
      slow_pid=$!
      for _ in $(seq 50); do [ -s "$work/slow.port" ] && break; sleep 0.1; done
      java -cp "$here/kotlin/target/classes:$(cat "$here/kotlin/target/classpath.txt")" MemoryKt \
        --amqp "$amqp" --upstream "http://127.0.0.1:$(head -1 "$work/slow.port")" | tee -a "$work/memory.jsonl"
      kill "$slow_pid"
      ;;
    kotlin)
      step "kotlin: the release courierkit JAR (dist.sh kotlin) and pinned peers"
      bash scripts/dist.sh kotlin
      mvn -B -q -ntp -f "$here/kotlin/pom.xml" compile
      step "kotlin: $rounds rounds per workload, each contender warmed up first"
      java -cp "$here/kotlin/target/classes:$(cat "$here/kotlin/target/classpath.txt")" PeersKt \
        --upstream "$upstream" --amqp "$amqp" --rounds "$rounds" >>"$rows"
      ;;
    *)
      echo "bench-peers: unknown part $lang (python, node, kotlin, memory)" >&2
      exit 2
      ;;
  esac
done

step "results (median of $rounds rounds; ratio = courier / peer)"
python3 "$here/report.py" "$rows" "$here/latest.json"
echo "written: bench/peers/latest.json"
