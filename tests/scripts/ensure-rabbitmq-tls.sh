#!/usr/bin/env bash
# Gives the local RabbitMQ broker a TLS
# listener on 127.0.0.1:5671 that requires a client certificate and logs clients in by
# it (SASL EXTERNAL, user = certificate CN), then prints the AMQPS URL.
#
# The certificates come from the testkit's PKI in $COURIER_PKI_DIR (default
# ~/.cache/courier/pki), the same files the other TLS tests use: user courier-client
# exists without a password, so only its certificate gets in; there is deliberately no
# user courier-nobody, the CN of the PKI's valid-but-unknown client certificate.
#
# On a machine without RabbitMQ it installs the package without starting it (through
# ensure-rabbitmq.sh --install-only), writes the certificates, the configuration and the
# plugin list, and only then starts the broker: the first start already has the TLS
# listener, so a fresh machine needs no restart.
#
# Idempotent: a running broker is restarted only when its TLS files, its configuration or
# its plugins change, or when port 5671 is not answering; the restart waits until the old
# node has exited (ensure-rabbitmq.sh --stop), not only until its port closed. COURIER_AMQPS_URL overrides
# everything (the script then only prints it), so a developer or CI can point the
# tests at any broker set up the same way.
set -euo pipefail

if [ -n "${COURIER_AMQPS_URL:-}" ]; then
  echo "$COURIER_AMQPS_URL"
  exit 0
fi

root=$(cd "$(dirname "$0")/../.." && pwd)
pki_dir="${COURIER_PKI_DIR:-$HOME/.cache/courier/pki}"
testkit="${COURIER_TESTKIT:-${CARGO_TARGET_DIR:-$HOME/.cache/courier/target}/debug/courier-testkit}"
conf=/etc/rabbitmq/rabbitmq.conf
tls_dir=/etc/rabbitmq/tls
url="amqps://127.0.0.1:5671/%2f?auth_mechanism=external"

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
fail() {
  echo "ensure-rabbitmq-tls: $*" >&2
  tail -n 30 /var/log/rabbitmq/rabbit@*.log >&2 2>/dev/null || true
  exit 1
}

bash "$root/tests/scripts/ensure-rabbitmq.sh" --install-only

if [ ! -x "$testkit" ]; then
  (cd "$root" && cargo build -q -p courier-testkit)
fi
"$testkit" pki --out "$pki_dir" >/dev/null

restart=false

# The broker runs as rabbitmq and must read the key; nobody else needs to.
sudo_ install -d -m 0750 -o root -g rabbitmq "$tls_dir"
for file in ca.pem server.pem server.key; do
  if ! sudo_ cmp -s "$pki_dir/$file" "$tls_dir/$file"; then
    sudo_ install -m 0640 -o root -g rabbitmq "$pki_dir/$file" "$tls_dir/$file"
    restart=true
  fi
done

# Only the block between the markers is ours, so settings made by hand survive. The
# plain listener needs nothing here: its default, 5672, stays on unless disabled.
begin="# BEGIN courier TLS (tests/scripts/ensure-rabbitmq-tls.sh)"
end="# END courier TLS"
block="$begin
listeners.ssl.default = 5671
ssl_options.cacertfile = $tls_dir/ca.pem
ssl_options.certfile = $tls_dir/server.pem
ssl_options.keyfile = $tls_dir/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name
$end"
current=$(sudo_ cat "$conf" 2>/dev/null || true)
others=$(printf '%s\n' "$current" | awk -v b="$begin" -v e="$end" '$0 == b {skip = 1} !skip {print} $0 == e {skip = 0}')
wanted=$(printf '%s\n%s\n' "$others" "$block" | sed '/./,$!d')
if [ "$current" != "$wanted" ]; then
  printf '%s\n' "$wanted" | sudo_ tee "$conf" >/dev/null
  sudo_ chmod 0644 "$conf"
  restart=true
fi

# Offline: the plugin takes effect at the (re)start below, which the listener needs anyway.
plugins=/etc/rabbitmq/enabled_plugins
before=$(sudo_ cat "$plugins" 2>/dev/null || true)
sudo_ rabbitmq-plugins -q enable --offline rabbitmq_auth_mechanism_ssl >/dev/null
if [ "$before" != "$(sudo_ cat "$plugins" 2>/dev/null || true)" ]; then
  restart=true
fi

if answers 5672; then
  answers 5671 || restart=true
  if $restart; then
    echo "ensure-rabbitmq-tls: restarting rabbitmq-server with the new TLS configuration" >&2
    bash "$root/tests/scripts/ensure-rabbitmq.sh" --stop
  fi
fi
# Starts the broker when it is not running (the first start on a fresh machine, or after
# the stop above) and waits for await_startup.
COURIER_AMQP_URL= bash "$root/tests/scripts/ensure-rabbitmq.sh" >/dev/null

# A handshake with the client certificate, not just an open port: this is what the
# tests will do, and it catches unreadable or mismatched certificate files.
handshakes() {
  answers 5671 || return 1
  command -v openssl >/dev/null 2>&1 || return 0
  timeout 10 openssl s_client -connect 127.0.0.1:5671 -verify_return_error \
    -CAfile "$pki_dir/ca.pem" -cert "$pki_dir/client.pem" -key "$pki_dir/client.key" \
    </dev/null >/dev/null 2>&1
}
deadline=$((SECONDS + 60))
until handshakes; do
  [ $SECONDS -lt $deadline ] || fail "no TLS handshake on 127.0.0.1:5671 after 60 s"
  sleep 1
done

ctl() { sudo_ timeout 30 rabbitmqctl -q "$@"; }
users=$(ctl list_users | awk '{print $1}')
if ! grep -qx courier-client <<<"$users"; then
  # add_user wants a password; clearing it right after leaves the certificate as the
  # only way in.
  ctl add_user courier-client "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >/dev/null
fi
ctl clear_password courier-client >/dev/null
ctl set_permissions -p / courier-client ".*" ".*" ".*" >/dev/null
if grep -qx courier-nobody <<<"$users"; then
  ctl delete_user courier-nobody >/dev/null
fi

echo "$url"
