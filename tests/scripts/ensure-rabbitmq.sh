#!/usr/bin/env bash
# Makes sure a RabbitMQ broker answers on 127.0.0.1:5672 and prints its AMQP URL.
#
#   ensure-rabbitmq.sh                 install if missing, start if stopped, wait until ready
#   ensure-rabbitmq.sh --install-only  install if missing; never starts the broker
#   ensure-rabbitmq.sh --stop          stop the local broker and wait until its node is gone
#
# Idempotent: when a broker already answers, nothing is installed or started.
# COURIER_AMQP_URL overrides everything (the script then only prints it), so a developer or
# CI can point the tests at any broker.
#
# Debian's package starts the broker from its postinst (through invoke-rc.d). The install
# here forbids that with a policy-rc.d, so that ensure-rabbitmq-tls.sh can write the TLS
# listener's configuration before the first start: a fresh machine never restarts it.
set -euo pipefail

mode=${1:-start}
url="amqp://guest:guest@127.0.0.1:5672/%2f"

if [ "$mode" = start ] && [ -n "${COURIER_AMQP_URL:-}" ]; then
  echo "$COURIER_AMQP_URL"
  exit 0
fi

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
answers() { (exec 3<>"/dev/tcp/127.0.0.1/${1:-5672}") 2>/dev/null; }

# The AMQP port opens before the broker accepts connections; `rabbitmqctl await_startup`
# is the documented readiness check, so use it when the tools are here.
ready() {
  answers || return 1
  if command -v rabbitmqctl >/dev/null 2>&1; then
    timeout 20 rabbitmqctl -q await_startup >/dev/null 2>&1 || return 1
  fi
}

# The Erlang VM of the broker's node, whatever started it (our start, an init script).
# The system broker's VM only: the cluster's nodes (ensure-rabbitmq-cluster.sh) run beam.smp
# too, with homes of their own.
node_running() { pgrep -f 'beam.smp.*-home /var/lib/rabbitmq ' >/dev/null 2>&1; }

install() {
  command -v rabbitmq-server >/dev/null 2>&1 && return 0
  echo "ensure-rabbitmq: installing rabbitmq-server from Debian's packages" >&2
  local policy=/usr/sbin/policy-rc.d ours=false
  if [ ! -e "$policy" ]; then
    # 101 = "action forbidden": invoke-rc.d leaves the service stopped.
    printf '#!/bin/sh\nexit 101\n' | sudo_ tee "$policy" >/dev/null
    sudo_ chmod 0755 "$policy"
    ours=true
  fi
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  local rc=0
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server >&2 || rc=$?
  if $ours; then sudo_ rm -f "$policy"; fi
  [ $rc -eq 0 ] || { echo "ensure-rabbitmq: apt-get install rabbitmq-server failed ($rc)" >&2; exit $rc; }
  # Some init systems start it anyway; the caller expects a stopped, unconfigured broker.
  if node_running; then stop; fi
}

# `rabbitmqctl shutdown` blocks until the node's VM has exited; the port closing is not
# enough, since a new start while the old node is still registered with epmd fails.
stop() {
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet rabbitmq-server 2>/dev/null; then
    sudo_ systemctl stop rabbitmq-server >&2
  else
    sudo_ timeout 60 rabbitmqctl -q shutdown >/dev/null 2>&1 || true
  fi
  local deadline=$((SECONDS + 60))
  while node_running || answers 5672 || answers 25672; do
    if [ $SECONDS -ge $deadline ]; then
      echo "ensure-rabbitmq: the broker's node did not exit within 60 s" >&2
      exit 1
    fi
    sleep 1
  done
}

start() {
  echo "ensure-rabbitmq: starting rabbitmq-server" >&2
  # No systemd on CI machines: start the broker directly, detached, as the rabbitmq user
  # that the package created (it owns /var/lib/rabbitmq, where the Erlang cookie lives).
  local log=/tmp/courier-rabbitmq.log
  if id rabbitmq >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    (setsid su rabbitmq -s /bin/sh -c "rabbitmq-server" >"$log" 2>&1 &)
  else
    (setsid sudo_ rabbitmq-server >"$log" 2>&1 &)
  fi
  local deadline=$((SECONDS + 120))
  until ready; do
    if [ $SECONDS -ge $deadline ]; then
      echo "ensure-rabbitmq: broker not ready after 120 s; last lines of $log:" >&2
      tail -n 30 "$log" >&2 || true
      exit 1
    fi
    sleep 1
  done
}

case "$mode" in
  --install-only) install; exit 0 ;;
  --stop) if command -v rabbitmqctl >/dev/null 2>&1; then stop; fi; exit 0 ;;
  start) ;;
  *) echo "usage: ensure-rabbitmq.sh [--install-only|--stop]" >&2; exit 2 ;;
esac

if answers; then
  deadline=$((SECONDS + 60))
  until ready; do
    [ $SECONDS -lt $deadline ] || { echo "ensure-rabbitmq: port 5672 answers but the broker never became ready" >&2; exit 1; }
    sleep 1
  done
  echo "$url"
  exit 0
fi

install
# A node still shutting down (or one that crashed without freeing its name) would make
# this start fail: wait for it first.
if node_running; then stop; fi
start
echo "$url"
