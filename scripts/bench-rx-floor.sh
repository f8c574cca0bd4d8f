#!/usr/bin/env bash
# The per-packet floor: the agent's receive program (st_tp_btf_netif_receive_skb) beside the
# least programs that could stand in its place (tests/SockTrace.Benchmarks/load/rx-floor.bpf.c:
# empty; the skb's device read; one per-CPU counter; packets and bytes per device), each
# attached alone on tp_btf/netif_receive_skb, rounds interleaved, with kernel.bpf_stats_enabled
# on while `stload accept` runs (the workload of the per-packet row of bench-hotpath.sh).
# Prints ns per run of each, median [min..max]. Run as root.
# Knobs: ROUNDS (3), SECONDS_OP (4), SKIP_BUILD=1, AGENT_DLL, BENCH_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
ROUNDS=${ROUNDS:-3}
SECONDS_OP=${SECONDS_OP:-4}
out=${BENCH_OUT:-$(mktemp -d /tmp/socktrace-rx-floor.XXXXXX)}
mkdir -p "$out"
agent_dll=${AGENT_DLL:-$root/agent/SockTrace.Agent/bin/Release/net10.0/socktrace.dll}
bin=$root/tests/SockTrace.Benchmarks/bin
port=${AGENT_PORT:-19476}
variants=(EMPTY READ COUNT DEVICE)
pid=

log() { echo "bench-rx-floor: $*" >&2; }

if [[ -z ${SKIP_BUILD:-} ]]; then
  scripts/build.sh >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
fi
mkdir -p "$bin"
cc -O2 -Wall -Wextra -pthread tests/SockTrace.Benchmarks/load/stload.c -o "$bin/stload"
cc -O2 -Wall -Wextra tests/SockTrace.Benchmarks/load/floor.c -lbpf -o "$bin/floor"
for v in "${variants[@]}"; do
  clang -O2 -g -target bpf -DRX_EMPTY=0 -DRX_READ=1 -DRX_COUNT=2 -DRX_DEVICE=3 -DRX_VARIANT="RX_$v" \
    -Ibpf/.output -c tests/SockTrace.Benchmarks/load/rx-floor.bpf.c -o "$out/rx-$v.bpf.o"
done

stop() {
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}
trap stop EXIT

# run NAME: attaches NAME alone, runs the workload under bpf_stats, prints ns per run.
run() {
  local name=$1 program
  if [[ $name == agent ]]; then
    dotnet "$agent_dll" --urls "http://127.0.0.1:$port" >>"$out/agent.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { log "the agent did not become healthy"; cat "$out/agent.log"; exit 1; }
    program=st_tp_btf_netif_receive_skb
  else
    "$bin/floor" "$out/rx-$name.bpf.o" >"$out/floor.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do grep -q '^Attached 1' "$out/floor.log" && break; sleep 0.1; done
    grep -q '^Attached 1' "$out/floor.log" || { log "rx-$name did not attach"; cat "$out/floor.log"; exit 1; }
    program=rx_floor
  fi
  sysctl -qw kernel.bpf_stats_enabled=1
  "$bin/stload" accept "$SECONDS_OP" >>"$out/workloads.txt"
  local line; line=$(bpftool prog show | grep -E "name $program( |$)" | tail -1)
  sysctl -qw kernel.bpf_stats_enabled=0
  stop
  awk '{ for (i = 1; i < NF; i++) { if ($i == "run_time_ns") t = $(i+1); if ($i == "run_cnt") c = $(i+1) } }
    END { if (c) printf "%.1f", t / c; else printf "-" }' <<<"$line"
}

stats() { # "median [min..max]"
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END { m = NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
    printf "%.0f [%.0f..%.0f]", m, v[1], v[NR] }'
}

declare -A ns
for i in $(seq 1 "$ROUNDS"); do
  for name in "${variants[@]}" agent; do
    log "round $i/$ROUNDS: $name"
    ns[$name]+=" $(run "$name")"
  done
done

echo "| program on tp_btf/netif_receive_skb | ns per run, median [min..max] of $ROUNDS |"
echo "|---|---|"
for name in "${variants[@]}"; do
  echo "| rx-floor $name | $(stats ${ns[$name]}) |"
done
echo "| agent (st_tp_btf_netif_receive_skb) | $(stats ${ns[agent]}) |"
