#!/usr/bin/env bash
# Churn soak: a node's worth of coming and going through one agent with pod attribution on.
# PROCESSES processes with distinct names (churn-00, churn-01, ...), each listening on
# LISTENERS ports of its own (closed and reopened half way through each run) and each in a
# pod cgroup of its own, run GENERATIONS times: every generation is a new process in a new
# pod (ADDED to a fake API server before it starts, DELETED after it exits). CONNECTIONS
# connections in all, paced over at least MIN_SECONDS.
# After each generation: every pod's accepts on /metrics equal what its process accepted,
# no accept error and no record lost, the deleted pods' series gone; samples the agent's
# RSS, its series count and the entries of each of its BPF hash maps.
# Prints one markdown table and a verdict (SOAK.md records a run). Run as root.
# Knobs (environment): PROCESSES (50), LISTENERS (4), GENERATIONS (10),
# CONNECTIONS (1000000), MIN_SECONDS (600), WARMUP_GENERATIONS (2), AGENT_ARGS, SKIP_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

PROCESSES=${PROCESSES:-50}
LISTENERS=${LISTENERS:-4}
GENERATIONS=${GENERATIONS:-10}
CONNECTIONS=${CONNECTIONS:-1000000}
MIN_SECONDS=${MIN_SECONDS:-600}
WARMUP_GENERATIONS=${WARMUP_GENERATIONS:-2}
per_run=$((CONNECTIONS / (PROCESSES * GENERATIONS)))
run_seconds=$((MIN_SECONDS / GENERATIONS))
((per_run > 0 && per_run % (2 * LISTENERS) == 0)) ||
  { echo "soak-churn: CONNECTIONS / (PROCESSES * GENERATIONS) = $per_run must be a positive multiple of 2 * LISTENERS" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "soak-churn: run as root (the agent loads BPF programs; pods need cgroups)" >&2; exit 2; }
# The v2 hierarchy, as the agent finds it: /sys/fs/cgroup, or its unified/ on a hybrid host.
cgroup_root=
for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do [[ -f $d/cgroup.controllers ]] && { cgroup_root=$d; break; }; done
[[ -n $cgroup_root ]] || { echo "soak-churn: needs a cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified" >&2; exit 2; }

work=$(mktemp -d /tmp/socktrace-soak-churn.XXXXXX)
slice=$cgroup_root/socktrace-soak-$$.slice
agent_dll=$root/agent/SockTrace.Agent/bin/Release/net10.0/socktrace.dll
agent_pid= api_pid=
log() { echo "soak-churn: $*" >&2; }

cleanup() {
  [[ -n $agent_pid ]] && kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  [[ -n $api_pid ]] && kill "$api_pid" 2>/dev/null || true
  # Innermost first: a cgroup with children cannot be removed.
  [[ -d $slice ]] && find "$slice" -depth -type d -exec rmdir {} + 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

[[ -n ${SKIP_BUILD:-} ]] || scripts/build.sh >&2
command -v bpftool >/dev/null || scripts/setup.sh >&2
clang -O2 -Wall -Werror -o "$work/churn" tests/SockTrace.Benchmarks/soak/churn.c

source scripts/lib/soak-agent.sh
api_port=$(free_port)
# The processes' ports: one block of PROCESSES * LISTENERS, the same in every generation,
# below the ephemeral range (ip_local_port_range) so that no client socket holds one of them
# when a listener reopens, and apart from the 20000-29999 of the agent's and the API's ports.
port_base=$(shuf -i 10000-$((20000 - PROCESSES * LISTENERS)) -n 1)
(($(cut -f1 /proc/sys/net/ipv4/ip_local_port_range) >= 30000)) ||
  { echo "soak-churn: needs an ephemeral port range above 30000 (net.ipv4.ip_local_port_range)" >&2; exit 2; }

python3 tests/SockTrace.Benchmarks/soak/fake-apiserver.py "$api_port" &
api_pid=$!
cat >"$work/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: soak, cluster: {server: "http://127.0.0.1:$api_port"}}]
users: [{name: agent, user: {token: soak}}]
contexts: [{name: soak, context: {cluster: soak, user: agent}}]
current-context: soak
EOF
api() { curl -fsS -o /dev/null -X "$1" "http://127.0.0.1:$api_port$2" ${3:+-H 'Content-Type: application/json' -d "$3"}; }
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$api_port/api/v1/pods" >/dev/null && break; sleep 0.1; done

NODE_NAME=soak-node KUBECONFIG=$work/kubeconfig start_agent --attribution kubernetes

# "name=entries" for each hash map of the agent's BPF programs (st_ maps): LRU maps that
# stay below their size, and plain ones that must not grow with the churn.
map_entries() {
  local ids id
  ids=$(bpftool -j prog show | python3 -c '
import json, sys
print(" ".join(sorted({str(m) for p in json.load(sys.stdin) if p.get("name", "").startswith("st_") for m in p.get("map_ids", [])})))')
  for id in $ids; do
    bpftool -j map show id "$id" | python3 -c '
import json, sys, subprocess
m = json.load(sys.stdin)
if "hash" in m["type"] and m["name"].startswith("st_"):
    n = len(json.loads(subprocess.run(["bpftool", "-j", "map", "dump", "id", str(m["id"])], capture_output=True, text=True).stdout or "[]"))
    print("%s=%d/%d" % (m["name"], n, m["max_entries"]))'
  done | sort | paste -sd ' '
}

echo "| gen | connections | seconds | exact per pod | errors | ring drops | pods' series after delete | accept series | series over the cap | agent RSS (MiB) | BPF hash map entries (used/size) |"
echo "|---:|---:|---:|:--|---:|---:|---:|---:|---:|---:|:--|"
made_total=0 status=0
rss_samples=()
start=$SECONDS
for ((g = 0; g < GENERATIONS; g++)); do
  t0=$SECONDS
  pids=() dirs=()
  for ((n = 0; n < PROCESSES; n++)); do
    name=$(printf 'churn-%02d' "$n")
    pod=$name-g$g
    uid=$(cat /proc/sys/kernel/random/uuid)
    id=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    dir=$slice/kubepods-besteffort-pod${uid//-/_}.slice/cri-containerd-$id.scope
    mkdir -p "$dir"
    api POST /soak/pods "{\"name\":\"$pod\",\"uid\":\"$uid\",\"container_id\":\"$id\"}"
    dirs[n]=$dir
  done
  # The pods reach the agent's watch before their processes start, as on a node.
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$api_port/soak/delivered" | python3 -c 'import json, sys; d = json.load(sys.stdin); sys.exit(d["resourceVersion"] < d["latest"])' && break
    sleep 0.05
  done
  sleep 0.1
  for ((n = 0; n < PROCESSES; n++)); do
    name=$(printf 'churn-%02d' "$n")
    pod=$name-g$g
    dir=${dirs[n]}
    # Into its pod's cgroup before exec, so every accept carries that cgroup.
    sh -c 'echo $$ > "$1/cgroup.procs" && exec "$2" "$3" "$4" "$5" "$6" "$7"' sh "$dir" "$work/churn" "$name" \
      $((port_base + n * LISTENERS)) "$LISTENERS" "$per_run" "$run_seconds" >"$work/$pod.out" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { log "a churn process failed in generation $g"; status=1; }; done
  ((status == 0)) || break
  seconds=$((SECONDS - t0))

  # Records reach the agent within its poll interval: wait until every pod's count is in.
  expected=$((PROCESSES * per_run))
  for _ in $(seq 200); do
    scrape >"$work/metrics"
    (($(metric_sum socktrace_accepts_total 'pod="churn-' <"$work/metrics") >= expected)) && break
    sleep 0.1
  done
  sleep 0.5
  scrape >"$work/metrics"
  exact=0
  for ((n = 0; n < PROCESSES; n++)); do
    pod=$(printf 'churn-%02d-g%d' "$n" "$g")
    made=$(awk '{ s += $2 } END { print s }' "$work/$pod.out")
    seen=$(metric_sum socktrace_accepts_total "pod=\"$pod\"" <"$work/metrics")
    if ((made == per_run && seen == made)); then
      exact=$((exact + 1))
    else
      log "$pod: made $made, /metrics $seen:"
      grep "^socktrace_accepts_total{.*comm=\"${pod%-g*}\"" "$work/metrics" >&2 || true
    fi
  done
  made_total=$((made_total + expected))
  errors=$(metric_sum socktrace_accept_errors_total 'pod="churn-' <"$work/metrics")
  drops=$(metric_sum socktrace_ringbuf_drops_total <"$work/metrics")
  series=$(grep -c '^socktrace_accepts_total{' "$work/metrics" || true)
  overflow=$(metric_sum socktrace_series_overflow_total <"$work/metrics")

  for ((n = 0; n < PROCESSES; n++)); do api DELETE "/soak/pods/$(printf 'churn-%02d-g%d' "$n" "$g")"; done
  find "$slice" -mindepth 1 -depth -type d -exec rmdir {} +
  left=0
  for _ in $(seq 100); do
    left=$(scrape | grep -c "pod=\"churn-..-g$g\"" || true)
    ((left == 0)) && break
    sleep 0.2
  done
  rss=$(rss_kb)
  rss_samples+=("$rss")
  printf '| %d | %d | %d | %d of %d | %d | %d | %d | %d | %d | %.1f | %s |\n' "$g" "$made_total" "$seconds" "$exact" "$PROCESSES" \
    "$errors" "$drops" "$left" "$series" "$overflow" "$(echo "$rss / 1024" | bc -l)" "$(map_entries)"
  if ((exact != PROCESSES || errors != 0 || drops != 0 || left != 0 || overflow != 0)); then
    log "generation $g: $exact of $PROCESSES pods exact, $errors errors, $drops drops, $left series of deleted pods left, $overflow over the series cap"
    status=1
    break
  fi
done

rss_flat "$WARMUP_GENERATIONS" generations "${rss_samples[@]}" || status=1
printf 'connections: %d of %d in %d s; %d processes x %d generations, %d listeners; exact counts: %s\n' \
  "$made_total" "$CONNECTIONS" "$((SECONDS - start))" "$PROCESSES" "$GENERATIONS" "$((PROCESSES * LISTENERS))" \
  "$([[ $status == 0 ]] && echo yes || echo NO)"
exit $status
