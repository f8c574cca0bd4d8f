#!/usr/bin/env bash
# What the delivery hook (bpf/delivery.bpf.c) costs per received segment: the built agent
# runs, kernel.bpf_stats_enabled=1 for the measured window only (then set back), and a
# loopback TCP workload in a network namespace of its own (tests/SockTrace.Benchmarks/
# sockmap/loopback_bench.c: a stream in small writes, then a 64-byte ping-pong) gives the
# segments. For each program this agent loaded (ids not there before it started): runs and
# run time (bpftool prog show: run_cnt, run_time_ns) per TCP segment the namespace
# received (its /proc/net/snmp InSegs, pure ACKs included) and per run. The programs run
# for every socket on the host, so on a busy machine there are more runs than the
# workload's segments; ns per run stays what each run costs.
# Expects the solution built in Release (scripts/build.sh). Run as root.
# Knobs: SECONDS_STREAM (5), CHUNK (1448), PINGS (20000), SIZE (64), PORT (9482).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_STREAM:-5} chunk=${CHUNK:-1448} pings=${PINGS:-20000} size=${SIZE:-64} port=${PORT:-9482}
agent_dll=agent/SockTrace.Agent/bin/Release/net10.0/socktrace.dll
[ -f "$agent_dll" ] || { echo "bench-delivery: $agent_dll is missing: run scripts/build.sh" >&2; exit 1; }
out=$(mktemp -d /tmp/socktrace-delivery-XXXXXX)
agent_pid=
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
  sysctl -qw kernel.bpf_stats_enabled="$stats_was"
  [ -n "$agent_pid" ] && { kill -TERM "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; }
  rm -rf "$out"
}
trap cleanup EXIT
cc -O2 -Wall -o "$out/loopback_bench" tests/SockTrace.Benchmarks/sockmap/loopback_bench.c

prog_stats() { # ID NAME RUN_TIME_NS RUN_CNT for each loaded program
  bpftool prog show 2>/dev/null | awk '/^[0-9]+:/ { id = $1; sub(":", "", id); name = ""; t = 0; c = 0
    for (i = 2; i <= NF; i++) { if ($i == "name") name = $(i+1); if ($i == "run_time_ns") t = $(i+1); if ($i == "run_cnt") c = $(i+1) }
    print id, name, t, c }'
}
prog_stats | awk '{print $1}' >"$out/before"
dotnet "$agent_dll" --urls "http://127.0.0.1:$port" >"$out/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$agent_pid" 2>/dev/null || { cat "$out/agent.log"; echo "bench-delivery: the agent exited" >&2; exit 1; }
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/metrics" | grep -E '^socktrace_probe_info\{.*hook="(delivery|rx)"' | sed 's/^/# /'
sleep 2

# WORKLOAD ARGS...: its line, then the namespace's TCP InSegs.
run() {
  unshare -n sh -c '
    ip link set lo up
    "$@"
    awk "/^Tcp:/ { if (!h) { for (i = 1; i <= NF; i++) if (\$i == \"InSegs\") c = i; h = 1 } else print \"in_segs=\" \$c }" /proc/net/snmp
  ' sh "$@"
}

echo "kernel $(uname -r); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
for workload in "stream $secs $chunk" "pingpong $pings $size"; do
  sysctl -qw kernel.bpf_stats_enabled=1
  prog_stats >"$out/s0"
  # shellcheck disable=SC2086
  result=$(run "$out/loopback_bench" $workload | tr '\n' ' ')
  prog_stats >"$out/s1"
  sysctl -qw kernel.bpf_stats_enabled="$stats_was"
  segs=$(sed 's/.*in_segs=\([0-9]*\).*/\1/' <<<"$result")
  echo "## $result"
  awk -v n="$segs" '
    FILENAME == ARGV[1] { before[$1] = 1; next }
    FILENAME == ARGV[2] { t0[$1] = $3; c0[$1] = $4; next }
    !($1 in before) && ($1 in t0) && $2 ~ /^st_/ && $4 > c0[$1] {
      c = $4 - c0[$1]; t = $3 - t0[$1]
      printf "| BPF %s | %.3f runs and %.0f ns per segment received (%.0f ns per run, %d runs) |\n", $2, c / n, t / n, t / c, c }
  ' "$out/before" "$out/s0" "$out/s1"
done
echo "load after $(cut -d' ' -f1-3 /proc/loadavg)"
