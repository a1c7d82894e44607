#!/usr/bin/env bash
# Makes sure a three-node RabbitMQ cluster runs on this machine and prints its AMQP URLs:
# ONE line on stdout, the three URLs separated by single spaces, node 1 first:
#
#   amqp://guest:guest@127.0.0.1:5681/%2f amqp://guest:guest@127.0.0.1:5682/%2f amqp://guest:guest@127.0.0.1:5683/%2f
#
#   ensure-rabbitmq-cluster.sh [ensure]  install if missing, start the stopped nodes, cluster
#                                        them, check a 3-member quorum queue, print the URLs
#   ensure-rabbitmq-cluster.sh stop      stop the three nodes gracefully (3, 2, then 1)
#   ensure-rabbitmq-cluster.sh status    one line per node, then `rabbitmqctl cluster_status`;
#                                        exits 0 only if all three run and are clustered
#   ensure-rabbitmq-cluster.sh urls      print the URLs (no checks)
#   ensure-rabbitmq-cluster.sh kill N    SIGKILL node N's Erlang VM (beam.smp), wait until gone
#   ensure-rabbitmq-cluster.sh start N   start node N (if down), wait until it is back in the cluster
#   ensure-rabbitmq-cluster.sh stop-node N   graceful stop of node N
#   ensure-rabbitmq-cluster.sh leader QUEUE  print the index (1-3) of the node holding the
#                                        leader of quorum queue QUEUE in vhost /
#   ensure-rabbitmq-cluster.sh delete-queues PREFIX  delete every queue of vhost / whose
#                                        name starts with PREFIX (what a test suite left)
#
# Messages go to stderr. Every wait is bounded and a failure names the node and its log.
#
# The nodes are courier-c1@localhost .. courier-c3@localhost: AMQP on 127.0.0.1:5681..5683
# (loopback only), Erlang distribution on 127.0.0.1:25681..25683, each with its own
# directory /var/lib/courier-cluster/courier-cN/ (mnesia/, log/, rabbitmq.conf, home/ with
# the cluster's shared Erlang cookie: RabbitMQ 3.10 reads it from $HOME/.erlang.cookie).
# They run as the rabbitmq user from Debian's rabbitmq-server package (installed through
# ensure-rabbitmq.sh --install-only when missing), without the management plugin, with one
# Erlang scheduler each and a 512 MiB memory watermark, to stay lean on a shared machine.
# Node logs: /var/lib/courier-cluster/courier-cN/log/courier-cN@localhost.log (and
# console.log next to it for what the start script printed).
#
# This cluster is separate from the single broker of ensure-rabbitmq.sh (rabbit@<host>,
# ports 5672/5671/25672, /var/lib/rabbitmq): neither touches the other's node, files or
# cookie; they only share epmd (port 4369).
#
# Idempotent: when the three nodes run and are clustered, the script only prints the URLs.
# A node that was stopped or killed is started again and rejoins; node 1 is the seed that
# nodes 2 and 3 join (stop_app, reset, join_cluster, start_app) when they are not members.
# COURIER_CLUSTER_URLS overrides the default mode (the script then only prints it), so a
# developer or CI can point the tests at any cluster; the other commands always act on the
# local nodes. COURIER_CLUSTER_DIR moves /var/lib/courier-cluster.
set -euo pipefail

mode=${1:-ensure}

if [ "$mode" = ensure ] && [ -n "${COURIER_CLUSTER_URLS:-}" ]; then
  echo "$COURIER_CLUSTER_URLS"
  exit 0
fi

me=ensure-rabbitmq-cluster
here=$(cd "$(dirname "$0")" && pwd)
base=${COURIER_CLUSTER_DIR:-/var/lib/courier-cluster}
rmq_bin=/usr/lib/rabbitmq/bin
all=(1 2 3)
sane_path=/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "$me: $*" >&2; }
die() { say "$*"; exit 1; }

name() { echo "courier-c$1@localhost"; }
amqp_port() { echo $((5680 + $1)); }
dist_port() { echo $((25680 + $1)); }
url() { echo "amqp://guest:guest@127.0.0.1:$(amqp_port "$1")/%2f"; }
urls() { echo "$(url 1) $(url 2) $(url 3)"; }
dir() { echo "$base/courier-c$1"; }
log_file() { echo "$(dir "$1")/log/$(name "$1").log"; }
console_log() { echo "$(dir "$1")/log/console.log"; }
logs_of() { echo "$(log_file "$1") (and $(console_log "$1"))"; }

check_index() {
  case "${1:-}" in 1|2|3) ;; *) echo "usage: ensure-rabbitmq-cluster.sh $mode N   (N = 1, 2 or 3)" >&2; exit 2 ;; esac
}

# The node log's last lines, without the per-queue Raft notices (a restart logs one or more
# per quorum queue, which would hide why the node is slow or stopped).
show_log() {
  local raft
  raft=$(grep -c "^.* queue '.*' in vhost '.*': " "$(log_file "$1")" 2>/dev/null || true)
  say "last lines of $(log_file "$1") (${raft:-0} per-queue Raft notices left out):"
  grep -v "^.* queue '.*' in vhost '.*': " "$(log_file "$1")" 2>/dev/null | tail -n 30 >&2 || true
  if [ -s "$(console_log "$1")" ]; then
    say "last lines of $(console_log "$1"):"
    tail -n 10 "$(console_log "$1")" >&2 || true
  fi
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A process that exists and is not a zombie (kill -0 succeeds on an unreaped zombie).
alive() { [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z ' "/proc/$1/stat" 2>/dev/null; }

# The node's Erlang VM, found by the node name in its environment: the cluster's VMs and
# the single broker's all look alike on the command line ("beam.smp ... -s rabbit boot").
vm_pid() {
  local want p
  want="RABBITMQ_NODENAME=$(name "$1")"
  for p in $(pgrep -x beam.smp 2>/dev/null); do
    # Servers only ("-s rabbit boot"): a rabbitmqctl is a beam.smp too.
    tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF -- ' -s rabbit boot ' || continue
    if tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qxF "$want"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# The environment of node N's server: nothing leaks in from the caller (no RABBITMQ_*,
# ERL_* of another broker), /etc/rabbitmq is never read.
node_env() {
  local d
  d=$(dir "$1")
  ENV=(
    PATH="$sane_path" LANG=C.UTF-8 LC_ALL=C.UTF-8
    HOME="$d/home"
    RABBITMQ_NODENAME="$(name "$1")"
    RABBITMQ_DIST_PORT="$(dist_port "$1")"
    RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf"
    RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
    RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
    RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
    RABBITMQ_MNESIA_BASE="$d/mnesia"
    RABBITMQ_LOG_BASE="$d/log"
    RABBITMQ_PID_FILE="$d/pid"
    ERL_CRASH_DUMP="$d/log/erl_crash.dump"
    # Lean VM: 1 scheduler (2 cores shared by 3 nodes and compilers), a smaller process
    # table than RabbitMQ's 1M, no busy waiting; distribution on loopback only.
    RABBITMQ_SERVER_ERL_ARGS="+P 131072 +t 1048576 +stbt db +zdbbl 32000 +S 1:1 +SDcpu 1:1 +SDio 4 +sbwt none +sbwtdcpu none +sbwtdio none"
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  )
}

# rabbitmqctl against node N, bounded (CTL_TIMEOUT seconds, default 60), run as root with
# the node's HOME so it reads the cluster's cookie.
ctl() {
  local n=$1 d
  shift
  d=$(dir "$n")
  # No RABBITMQ_NODENAME here: vm_pid tells the node's VM by it.
  (cd "$d" && timeout "${CTL_TIMEOUT:-60}" env -i PATH="$sane_path" LANG=C.UTF-8 LC_ALL=C.UTF-8 \
    HOME="$d/home" RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf" "$rmq_bin/rabbitmqctl" -n "$(name "$n")" "$@" 9>&-)
}

# The JSON of `cluster_status` as seen by node N, reduced to "key node node ..." lines.
cluster_view() {
  local json
  json=$(CTL_TIMEOUT=${CTL_TIMEOUT:-30} ctl "$1" -q cluster_status --formatter json 2>/dev/null) || return 1
  python3 -c '
import json, sys
s = json.loads(sys.argv[1])
for k in ("disk_nodes", "running_nodes"):
    print(k, " ".join(s.get(k) or []))
' "$json"
}

# Whether every name in $2.. appears in the "$1" line of a cluster_view.
view_has() {
  local view=$1 key=$2 line n
  shift 2
  line=" $(grep "^$key " <<<"$view" | cut -d' ' -f2-) "
  for n in "$@"; do
    [[ "$line" == *" $(name "$n") "* ]] || return 1
  done
}

healthy() {
  local n view
  for n in "${all[@]}"; do answers "$(amqp_port "$n")" || return 1; done
  view=$(CTL_TIMEOUT=20 cluster_view 1) || return 1
  view_has "$view" running_nodes "${all[@]}"
}

# --- files --------------------------------------------------------------------------------

conf_text() {
  cat <<EOF
# Written by tests/scripts/ensure-rabbitmq-cluster.sh: node $(name "$1") of courier's test cluster.
listeners.tcp.1 = 127.0.0.1:$(amqp_port "$1")
# guest may log in, from loopback only (the listener is loopback only anyway).
loopback_users.guest = true
# 3 nodes on a shared 24 GiB machine: alarm (block publishers) at 512 MiB per node,
# and when the disk has less than 512 MiB free.
vm_memory_high_watermark.absolute = 512MiB
disk_free_limit.absolute = 512MiB
# Quorum queues: a 64 MiB write-ahead log instead of 512 MiB keeps the in-memory tables small.
raft.wal_max_size_bytes = 67108864
log.console = false
log.file.level = info
EOF
}

cookie_file() { echo "$base/.erlang.cookie"; }

# Writes $2 into file $1 (mode $3, owner rabbitmq) when it differs; true when it changed.
put() {
  if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then return 1; fi
  printf '%s\n' "$2" >"$1.tmp"
  chmod "$3" "$1.tmp"
  chown rabbitmq:rabbitmq "$1.tmp"
  mv -f "$1.tmp" "$1"
}

files_current() {
  local n d
  [ -f "$(cookie_file)" ] || return 1
  for n in "${all[@]}"; do
    d=$(dir "$n")
    [ -f "$d/rabbitmq.conf" ] && [ "$(cat "$d/rabbitmq.conf")" = "$(conf_text "$n")" ] || return 1
    [ "$(cat "$(cookie_file)")" = "$(cat "$d/home/.erlang.cookie" 2>/dev/null)" ] || return 1
  done
}

# Creates node N's directories and files; true when its configuration changed.
prepare() {
  local n=$1 d changed=1
  d=$(dir "$n")
  install -d -m 0755 "$base"
  if [ ! -s "$(cookie_file)" ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F | head -c 32 >"$(cookie_file)")
    chown rabbitmq:rabbitmq "$(cookie_file)"
  fi
  install -d -m 0750 -o rabbitmq -g rabbitmq "$d" "$d/home" "$d/mnesia" "$d/log"
  put "$d/home/.erlang.cookie" "$(cat "$(cookie_file)")" 0600 && changed=0
  put "$d/rabbitmq.conf" "$(conf_text "$n")" 0640 && changed=0
  put "$d/enabled_plugins" "[]." 0640 || true
  put "$d/rabbitmq-env.conf" "# Empty on purpose: the script sets the environment." 0640 || true
  return $changed
}

install_rabbitmq() {
  if [ ! -x "$rmq_bin/rabbitmq-server" ]; then
    bash "$here/ensure-rabbitmq.sh" --install-only
  fi
  [ -x "$rmq_bin/rabbitmq-server" ] || die "rabbitmq-server is still missing after the install"
  id rabbitmq >/dev/null 2>&1 || die "the package did not create the rabbitmq user"
}

# --- nodes --------------------------------------------------------------------------------

# Launches node N's server in the background, detached; sets LAUNCHER[N] to the launcher's PID.
# The server must not inherit fd 9, the lock: it would hold the lock as long as it runs.
declare -A LAUNCHER=()
launch() {
  local n=$1 d
  d=$(dir "$n")
  node_env "$n"
  say "starting $(name "$n") (AMQP 127.0.0.1:$(amqp_port "$n"), log $(log_file "$n"))"
  echo "--- $(date -u +%FT%TZ) start" >>"$(console_log "$n")"
  LAUNCHER[$n]=$(cd "$d" && { setsid runuser -u rabbitmq -- env -i "${ENV[@]}" "$rmq_bin/rabbitmq-server" \
    </dev/null >>"$(console_log "$n")" 2>&1 9>&- & echo $!; })
}

# How long the last boot step (`await_startup` once the node listens) may take at least.
BOOT_TAIL=90
# How long `start N` may take to bring node N back (the boot, then rejoining the cluster).
# Callers that bound the script (the Python and Node cluster tests) allow more than this.
START_LIMIT=360

# Waits until node N has booted (port open, then `await_startup`), at most until $2 (SECONDS)
# plus BOOT_TAIL.
wait_booted() {
  local n=$1 deadline=$2 port left
  port=$(amqp_port "$n")
  until answers "$port"; do
    if ! vm_pid "$n" >/dev/null && { [ -z "${LAUNCHER[$n]:-}" ] || ! alive "${LAUNCHER[$n]}"; }; then
      show_log "$n"
      die "$(name "$n") exited while starting; see $(logs_of "$n")"
    fi
    if [ $SECONDS -ge "$deadline" ]; then
      show_log "$n"
      die "$(name "$n") not listening on 127.0.0.1:$port in time (it may be waiting for its cluster peers); see $(logs_of "$n")"
    fi
    sleep 1
  done
  # Listening, the node is at the end of its boot: a restart that recovered many quorum
  # queues on a loaded machine may have used most of the deadline, and the CLI alone takes
  # seconds to start there, so this last step gets at least BOOT_TAIL seconds of its own.
  left=$((deadline - SECONDS))
  [ $left -ge "$BOOT_TAIL" ] || left=$BOOT_TAIL
  if ! CTL_TIMEOUT=$left ctl "$n" -q await_startup >/dev/null 2>&1; then
    show_log "$n"
    die "$(name "$n") answers on $port but did not finish booting within $left s more; see $(logs_of "$n")"
  fi
  say "$(name "$n") booted"
}

# Makes sure node N's VM runs and its rabbit application is up (bounded by $2).
bring_up() {
  local n=$1 deadline=$2
  if vm_pid "$n" >/dev/null; then
    if ! answers "$(amqp_port "$n")"; then
      # A VM whose app was stopped (an interrupted join) or that is still booting.
      if CTL_TIMEOUT=15 ctl "$n" -q await_startup >/dev/null 2>&1; then return 0; fi
      say "$(name "$n") runs but its application does not: start_app"
      CTL_TIMEOUT=120 ctl "$n" -q start_app >&2 || true
    fi
  else
    launch "$n"
  fi
}

# Joins node N to node $2 (the seed) unless both already list each other as members.
ensure_member() {
  local n=$1 seed=$2 mine theirs out
  mine=$(cluster_view "$n") || die "cannot read the cluster status of $(name "$n"); see $(logs_of "$n")"
  theirs=$(cluster_view "$seed") || die "cannot read the cluster status of $(name "$seed"); see $(logs_of "$seed")"
  if view_has "$mine" disk_nodes "$seed" && view_has "$theirs" disk_nodes "$n"; then
    return 0
  fi
  say "joining $(name "$n") to $(name "$seed")"
  CTL_TIMEOUT=120 ctl "$n" -q stop_app >&2 || die "stop_app failed on $(name "$n"); see $(logs_of "$n")"
  if ! CTL_TIMEOUT=60 ctl "$n" -q reset >&2; then
    say "reset failed on $(name "$n"); trying force_reset"
    CTL_TIMEOUT=60 ctl "$n" -q force_reset >&2 || die "force_reset failed on $(name "$n"); see $(logs_of "$n")"
  fi
  if ! out=$(CTL_TIMEOUT=120 ctl "$n" -q join_cluster "$(name "$seed")" 2>&1); then
    # The seed still lists a node whose data was wiped: forget it, then join again.
    if [[ "$out" == *inconsistent* ]]; then
      say "$(name "$seed") still lists $(name "$n"): forget_cluster_node, then join again"
      CTL_TIMEOUT=60 ctl "$seed" -q forget_cluster_node "$(name "$n")" >&2 || true
      out=$(CTL_TIMEOUT=120 ctl "$n" -q join_cluster "$(name "$seed")" 2>&1) || {
        echo "$out" >&2; die "join_cluster failed on $(name "$n"); see $(logs_of "$n")"; }
    else
      echo "$out" >&2
      die "join_cluster failed on $(name "$n"); see $(logs_of "$n")"
    fi
  fi
  CTL_TIMEOUT=180 ctl "$n" -q start_app >&2 || { show_log "$n"; die "start_app failed on $(name "$n") after joining; see $(logs_of "$n")"; }
}

# Waits until node N sees every node in $3.. as running (bounded by $2).
wait_running() {
  local n=$1 deadline=$2 view=""
  shift 2
  until view=$(CTL_TIMEOUT=20 cluster_view "$n") && view_has "$view" running_nodes "$@"; do
    if [ $SECONDS -ge "$deadline" ]; then
      echo "$view" >&2
      die "$(name "$n") does not see $(for m in "$@"; do printf '%s ' "$(name "$m")"; done)running in time; see $(logs_of "$n")"
    fi
    sleep 1
  done
}

# Graceful stop of node N: `rabbitmqctl shutdown` (returns once the VM exited), SIGTERM
# (RabbitMQ stops gracefully on it) when the CLI cannot reach it; bounded.
stop_node() {
  local n=$1 pid deadline
  pid=$(vm_pid "$n") || return 0
  say "stopping $(name "$n") (pid $pid)"
  if ! CTL_TIMEOUT=90 ctl "$n" -q shutdown >/dev/null 2>&1; then
    kill -TERM "$pid" 2>/dev/null || true
  fi
  deadline=$((SECONDS + 60))
  while alive "$pid" || answers "$(amqp_port "$n")" || answers "$(dist_port "$n")"; do
    if [ $SECONDS -ge "$deadline" ]; then
      show_log "$n"
      die "$(name "$n") (pid $pid) did not exit within 60 s of its shutdown; see $(logs_of "$n")"
    fi
    sleep 1
  done
}

kill_node() {
  local n=$1 pid deadline
  pid=$(vm_pid "$n") || die "$(name "$n") is not running"
  say "killing $(name "$n") (beam.smp pid $pid) with SIGKILL"
  kill -KILL "$pid"
  deadline=$((SECONDS + 30))
  while alive "$pid" || answers "$(amqp_port "$n")" || answers "$(dist_port "$n")"; do
    [ $SECONDS -lt "$deadline" ] || die "$(name "$n") (pid $pid) still there 30 s after SIGKILL"
    sleep 0.2
  done
}

# --- AMQP check (python3 stdlib only) -----------------------------------------------------

# amqp login PORT | amqp declare PORT QUEUE | amqp delete PORT QUEUE..., as guest/guest on
# 127.0.0.1 in vhost /; declare makes a durable quorum queue with 3 initial members.
amqp() {
  timeout 60 python3 - "$@" <<'PY'
import socket, struct, sys

op, port = sys.argv[1], int(sys.argv[2])
queues = [q.encode() for q in sys.argv[3:]]

def shortstr(b): return struct.pack("B", len(b)) + b
def longstr(b): return struct.pack(">I", len(b)) + b
def table(items):
    body = b"".join(shortstr(k) + v for k, v in items)
    return struct.pack(">I", len(body)) + body

s = socket.create_connection(("127.0.0.1", port), timeout=15)
buf = b""
def recv_exact(n):
    global buf
    while len(buf) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit(f"port {port}: the broker closed the connection (login refused?)")
        buf += chunk
    out, buf = buf[:n], buf[n:]
    return out
def frame():
    t, ch, size = struct.unpack(">BHI", recv_exact(7))
    payload = recv_exact(size)
    if recv_exact(1) != b"\xce":
        raise SystemExit(f"port {port}: bad frame end")
    return t, ch, payload
def method(ch, cls, mid, args=b""):
    p = struct.pack(">HH", cls, mid) + args
    s.sendall(struct.pack(">BHI", 1, ch, len(p)) + p + b"\xce")
def expect(cls, mid):
    while True:
        t, ch, p = frame()
        if t != 1:
            continue  # heartbeats
        c, m = struct.unpack(">HH", p[:4])
        if (c, m) == (cls, mid):
            return p[4:]
        if (c, m) in ((10, 50), (20, 40)):
            code, = struct.unpack(">H", p[4:6])
            text = p[7:7 + p[6]].decode(errors="replace")
            raise SystemExit(f"port {port}: server closed {'connection' if c == 10 else 'channel'}: {code} {text}")
        raise SystemExit(f"port {port}: unexpected method {c}.{m}, wanted {cls}.{mid}")

s.sendall(b"AMQP\x00\x00\x09\x01")
expect(10, 10)                                  # connection.start
method(0, 10, 11, table([]) + shortstr(b"PLAIN") + longstr(b"\0guest\0guest") + shortstr(b"en_US"))
tune = expect(10, 30)                           # connection.tune
channel_max, frame_max, _ = struct.unpack(">HIH", tune[:8])
method(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, 0))
method(0, 10, 40, shortstr(b"/") + shortstr(b"") + b"\x00")
expect(10, 41)                                  # connection.open-ok: logged in
if op in ("declare", "delete"):
    method(1, 20, 10, shortstr(b""))
    expect(20, 11)
    for queue in queues:
        if op == "declare":
            args = table([(b"x-queue-type", b"S" + longstr(b"quorum")),
                          (b"x-quorum-initial-group-size", b"I" + struct.pack(">i", 3))])
            method(1, 50, 10, struct.pack(">H", 0) + shortstr(queue) + b"\x02" + args)  # durable
            expect(50, 11)
        else:
            method(1, 50, 40, struct.pack(">H", 0) + shortstr(queue) + b"\x00")
            expect(50, 41)
method(0, 10, 50, struct.pack(">H", 200) + shortstr(b"") + struct.pack(">HH", 0, 0))
expect(10, 51)
PY
}

# Index (1-3) of the node named in field $2 of queue $1, from the first node that answers.
queue_field() {
  local q=$1 field=$2 n json
  for n in "${all[@]}"; do
    answers "$(amqp_port "$n")" || continue
    json=$(CTL_TIMEOUT=30 ctl "$n" -q list_queues -p / name type "$field" --formatter json 2>/dev/null) || continue
    python3 -c '
import json, sys
q, field = sys.argv[2], sys.argv[3]
for row in json.loads(sys.argv[1]):
    if row.get("name") == q:
        kind = row.get("type")
        if kind != "quorum":
            sys.exit(f"queue {q} is a {kind} queue, not a quorum queue")
        v = row.get(field)
        vals = v if isinstance(v, list) else [v]
        print(" ".join(str(x) for x in vals if x not in (None, "", "undefined")))
        sys.exit(0)
sys.exit(f"no queue {q} in vhost /")
' "$json" "$q" "$field"
    return
  done
  die "no node of the cluster answers"
}

index_of() {
  case "$1" in
    "$(name 1)") echo 1 ;; "$(name 2)") echo 2 ;; "$(name 3)") echo 3 ;;
    *) return 1 ;;
  esac
}

quorum_check() {
  local q n members="" deadline
  q="courier-cluster-check-$$"
  for n in "${all[@]}"; do
    amqp login "$(amqp_port "$n")" || die "guest cannot log in on $(url "$n"); see $(logs_of "$n")"
  done
  amqp declare "$(amqp_port 1)" "$q" || die "declaring quorum queue $q on $(url 1) failed; see $(logs_of 1)"
  deadline=$((SECONDS + 60))
  while :; do
    members=$(queue_field "$q" online 2>/dev/null || true)
    [ "$(wc -w <<<"$members")" -eq 3 ] && break
    if [ $SECONDS -ge "$deadline" ]; then
      amqp delete "$(amqp_port 1)" "$q" || true
      die "quorum queue $q has online members [$members], wanted 3 within 60 s; see $(logs_of 1)"
    fi
    sleep 1
  done
  amqp delete "$(amqp_port 1)" "$q" || die "deleting quorum queue $q on $(url 1) failed"
  say "quorum queue check passed (3 members: $members)"
}

# --- commands -----------------------------------------------------------------------------

lock() {
  install -d -m 0755 "$base"
  exec 9>"$base/.lock"
  flock -w 300 9 || die "another ensure-rabbitmq-cluster.sh held $base/.lock for 5 minutes"
}

ensure() {
  if [ -x "$rmq_bin/rabbitmqctl" ] && files_current && healthy; then
    urls
    return 0
  fi
  install_rabbitmq
  lock
  # Another run may have done the work while this one waited for the lock.
  if files_current && healthy; then
    urls
    return 0
  fi
  local n deadline view changed=()
  for n in "${all[@]}"; do
    if prepare "$n" && vm_pid "$n" >/dev/null; then changed+=("$n"); fi
  done
  for n in "${changed[@]}"; do
    say "configuration of $(name "$n") changed: restarting it"
    stop_node "$n"
  done
  # All stopped nodes start together: after a full stop, a node that was not the last one
  # to stop waits for its peers before it finishes booting.
  deadline=$((SECONDS + 240))
  for n in "${all[@]}"; do bring_up "$n" "$deadline"; done
  for n in "${all[@]}"; do wait_booted "$n" "$deadline"; done
  view=$(cluster_view 1) || die "cannot read the cluster status of $(name 1); see $(logs_of 1)"
  if ! view_has "$view" running_nodes "${all[@]}"; then
    for n in 2 3; do view_has "$view" running_nodes "$n" || ensure_member "$n" 1; done
    wait_running 1 $((SECONDS + 60)) "${all[@]}"
  fi
  quorum_check
  urls
}

start_one() {
  local n=$1 m deadline view others=()
  install_rabbitmq
  lock
  if prepare "$n" && vm_pid "$n" >/dev/null; then
    say "configuration of $(name "$n") changed: restarting it"
    stop_node "$n"
  fi
  deadline=$((SECONDS + START_LIMIT - BOOT_TAIL - 60))
  if ! vm_pid "$n" >/dev/null || ! answers "$(amqp_port "$n")"; then
    bring_up "$n" "$deadline"
    wait_booted "$n" "$deadline"
  fi
  for m in "${all[@]}"; do
    [ "$m" = "$n" ] || ! answers "$(amqp_port "$m")" || others+=("$m")
  done
  if [ ${#others[@]} -gt 0 ]; then
    # Back in the cluster already (the usual case after a restart): done.
    view=$(CTL_TIMEOUT=20 cluster_view "$n") || view=""
    if view_has "$view" running_nodes "$n" "${others[@]}"; then return 0; fi
    # Node 1 is the seed; when it is down, any running member will do.
    if [ "$n" != 1 ]; then
      if answers "$(amqp_port 1)"; then ensure_member "$n" 1; else ensure_member "$n" "${others[0]}"; fi
    fi
    wait_running "$n" $((SECONDS + 60)) "$n" "${others[@]}"
  else
    say "$(name "$n") is up, but no other node of the cluster runs"
  fi
}

# Deletes the queues of vhost / named PREFIX*, through the first node that answers.
delete_queues() {
  local prefix=$1 n json names
  for n in "${all[@]}"; do
    answers "$(amqp_port "$n")" || continue
    json=$(CTL_TIMEOUT=30 ctl "$n" -q list_queues -p / name --formatter json 2>/dev/null) || continue
    mapfile -t names < <(python3 -c '
import json, sys
for row in json.loads(sys.argv[1]):
    if row["name"].startswith(sys.argv[2]):
        print(row["name"])
' "$json" "$prefix")
    [ ${#names[@]} -gt 0 ] || return 0
    amqp delete "$(amqp_port "$n")" "${names[@]}" || die "deleting ${#names[@]} queue(s) named $prefix* on $(url "$n") failed"
    say "deleted ${#names[@]} queue(s) named $prefix*"
    return 0
  done
  die "no node of the cluster answers"
}

status() {
  local n pid rc=0 shown=false
  for n in "${all[@]}"; do
    if pid=$(vm_pid "$n"); then
      if answers "$(amqp_port "$n")"; then
        echo "$(name "$n") $(url "$n") running pid $pid"
      else
        echo "$(name "$n") $(url "$n") not-listening pid $pid"; rc=1
      fi
    else
      echo "$(name "$n") $(url "$n") stopped"; rc=1
    fi
  done
  for n in "${all[@]}"; do
    answers "$(amqp_port "$n")" || continue
    if CTL_TIMEOUT=30 ctl "$n" cluster_status; then shown=true; break; fi
  done
  $shown || echo "(no node answers: no cluster status)"
  if [ $rc -eq 0 ]; then healthy || rc=1; fi
  return $rc
}

case "$mode" in
  ensure|start|stop|status|urls|kill|stop-node|leader|delete-queues) ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: ensure-rabbitmq-cluster.sh [ensure|stop|status|urls|kill N|start N|stop-node N|leader QUEUE|delete-queues PREFIX]" >&2; exit 2 ;;
esac

if [ "$mode" = urls ]; then urls; exit 0; fi

if [ "$(id -u)" -ne 0 ]; then
  # The nodes run as the rabbitmq user and the CLI reads their cookie: do it all as root.
  exec sudo env ${COURIER_CLUSTER_DIR:+COURIER_CLUSTER_DIR="$COURIER_CLUSTER_DIR"} bash "$0" "$@"
fi

case "$mode" in
  ensure) ensure ;;
  stop)
    if [ -x "$rmq_bin/rabbitmqctl" ]; then
      lock
      for n in 3 2 1; do stop_node "$n"; done
    fi
    ;;
  status)
    [ -x "$rmq_bin/rabbitmqctl" ] || die "rabbitmq-server is not installed"
    status
    ;;
  kill) check_index "${2:-}"; kill_node "$2" ;;
  stop-node) check_index "${2:-}"; lock; stop_node "$2" ;;
  start) check_index "${2:-}"; start_one "$2" ;;
  delete-queues)
    [ -n "${2:-}" ] || { echo "usage: ensure-rabbitmq-cluster.sh delete-queues PREFIX" >&2; exit 2; }
    delete_queues "$2"
    ;;
  leader)
    [ -n "${2:-}" ] || { echo "usage: ensure-rabbitmq-cluster.sh leader QUEUE" >&2; exit 2; }
    leader=$(queue_field "$2" leader) || exit 1
    [ -n "$leader" ] || die "quorum queue $2 has no leader right now"
    index_of "$leader" || die "the leader of $2 is $leader, not a node of this cluster"
    ;;
esac
