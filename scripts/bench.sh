#!/usr/bin/env bash
# Measures what the agent costs on this machine and prints one table (BENCHMARKS.md quotes it):
#   1. accept-heavy loopback load, no agent (A) against the agent attached (B), interleaved
#      A/B pairs, and a getppid() loop that nothing traces (the cost of enabled syscall
#      tracepoints on every syscall);
#   2. ring buffer drain: failing accept4() calls from 1 and 2 threads, records counted by
#      the agent against calls made, and drops; then records written by a BPF loop
#      (load/produce.bpf.c, BPF_PROG_TEST_RUN) at fixed rates, no syscall per record;
#   3. the agent's CPU and RSS while idle and at about 10k accepts/s;
#   4. the managed cost per record (BenchmarkDotNet, tests/SockTrace.Benchmarks);
#   5. where the in-kernel time goes: each of the agent's BPF programs' runs and run time per
#      connection of the accept loop (kernel.bpf_stats_enabled, read with bpftool);
#   6. the hot path per operation beside bpftrace and the floor (scripts/bench-hotpath.sh),
#      and the footprint of the native and managed builds (scripts/bench-footprint.sh),
#      each printing its own table after this one (SKIP_HOTPATH=1, SKIP_FOOTPRINT=1).
# Run as root. Knobs (environment): PAIRS (5), SECONDS_ACCEPT (5), SECONDS_SYSCALL (2),
# SECONDS_DRAIN (5), SECONDS_RATE (30), RATE (10000), WARMUP (60 s before the CPU and RSS
# measurements), BENCH_OUT (a new temporary folder),
# PRODUCE_RATES ("1000000 5000000 8000000"), PRODUCE_RING (67108864 bytes) and
# PRODUCE_POLL_MS (10) for the agent the BPF producer feeds, SKIP_BDN=1, AGENT_ARGS (extra
# agent flags, e.g. "--attach-mode kprobe").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

PAIRS=${PAIRS:-5}
SECONDS_ACCEPT=${SECONDS_ACCEPT:-5}
SECONDS_SYSCALL=${SECONDS_SYSCALL:-2}
SECONDS_DRAIN=${SECONDS_DRAIN:-5}
SECONDS_RATE=${SECONDS_RATE:-30}
RATE=${RATE:-10000}
WARMUP=${WARMUP:-60}
PRODUCE_RATES=${PRODUCE_RATES:-1000000 5000000 8000000}
PRODUCE_RING=${PRODUCE_RING:-67108864}
PRODUCE_POLL_MS=${PRODUCE_POLL_MS:-10}
out=${BENCH_OUT:-$(mktemp -d /tmp/socktrace-bench.XXXXXX)}
mkdir -p "$out"
agent_dll=$root/agent/SockTrace.Agent/bin/Release/net10.0/socktrace.dll
bench_dll=$root/tests/SockTrace.Benchmarks/bin/Release/net10.0/SockTrace.Benchmarks.dll
stload=$root/tests/SockTrace.Benchmarks/bin/stload
produce=$root/tests/SockTrace.Benchmarks/bin/produce
produce_obj=$root/tests/SockTrace.Benchmarks/bin/produce.bpf.o
port=${AGENT_PORT:-19464}
agent_pid=

log() { echo "bench: $*" >&2; }

# ---- build ----
if [[ -z ${SKIP_BUILD:-} ]]; then
  scripts/setup.sh
  log "building the agent and tests/SockTrace.Benchmarks (Release)"
  dotnet build tests/SockTrace.Benchmarks -c Release -v quiet -nologo >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
fi
mkdir -p "$(dirname "$stload")"
cc -O2 -Wall -Wextra -pthread tests/SockTrace.Benchmarks/load/stload.c -o "$stload"
clang -O2 -g -target bpf -I"/usr/include/$(gcc -dumpmachine)" -c tests/SockTrace.Benchmarks/load/produce.bpf.c -o "$produce_obj"
cc -O2 -Wall -Wextra tests/SockTrace.Benchmarks/load/produce.c -lbpf -o "$produce"

# ---- helpers ----
field() { # field KEY LINE: the value of KEY=VALUE in a stload line
  tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"
}

stats() { # stats VALUES...: "median [min..max]" with 3 significant digits
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {
    m = NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
    printf "%.4g [%.4g..%.4g]", m, v[1], v[NR] }'
}

median() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END { printf "%.6g", NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b / a }'; }

metric() { # metric REGEX: the value of the first /metrics sample line matching REGEX
  curl -sf "http://127.0.0.1:$port/metrics" | grep -E "$1" | head -1 | awk '{print $NF}'
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start_agent() {
  # shellcheck disable=SC2086
  dotnet "$agent_dll" --urls "http://127.0.0.1:$port" ${AGENT_ARGS:-} >>"$out/agent.log" 2>&1 &
  agent_pid=$!
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    kill -0 "$agent_pid" 2>/dev/null || { cat "$out/agent.log"; log "the agent exited"; exit 1; }
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { log "the agent did not become healthy"; exit 1; }
  sleep 2 # let start-up work (JIT, first GCs) finish before measuring
}

# shellcheck source=lib/stop-agent.sh
source scripts/lib/stop-agent.sh
trap stop_agent EXIT

other_tp_progs() { # tracepoint BPF programs already loaded (another agent, a kernel test) skew A
  if command -v bpftool >/dev/null; then
    bpftool prog show 2>/dev/null | grep -c ': tracepoint ' || true
  else
    echo 0
  fi
}

log "results in $out; other tracepoint BPF programs loaded before start: $(other_tp_progs)"
uptime >"$out/uptime.before"

# ---- 1. accept-heavy loopback and the getppid() loop, A/B interleaved ----
contaminated=0
declare -a a_rate b_rate a_cpu b_cpu a_p50 b_p50 a_p99 b_p99 a_pp b_pp a_ppc b_ppc r_rate r_cpu r_pp
for i in $(seq 1 "$PAIRS"); do
  log "pair $i/$PAIRS: no agent"
  others=$(other_tp_progs); echo "pair $i: tracepoint programs loaded by others during A: $others" >>"$out/accept.txt"
  if ((others > 0)); then contaminated=$((contaminated + 1)); fi
  la=$("$stload" accept "$SECONDS_ACCEPT"); echo "A $la" >>"$out/accept.txt"
  ga=$("$stload" getppid "$SECONDS_SYSCALL"); echo "A $ga" >>"$out/getppid.txt"
  log "pair $i/$PAIRS: agent attached"
  start_agent
  lb=$("$stload" accept "$SECONDS_ACCEPT"); echo "B $lb" >>"$out/accept.txt"
  gb=$("$stload" getppid "$SECONDS_SYSCALL"); echo "B $gb" >>"$out/getppid.txt"
  stop_agent
  a_rate+=("$(field rate "$la")"); b_rate+=("$(field rate "$lb")")
  a_cpu+=("$(field rate_per_cpu_s "$la")"); b_cpu+=("$(field rate_per_cpu_s "$lb")")
  a_p50+=("$(field p50_us "$la")"); b_p50+=("$(field p50_us "$lb")")
  a_p99+=("$(field p99_us "$la")"); b_p99+=("$(field p99_us "$lb")")
  a_pp+=("$(field ns_per_call "$ga")"); b_pp+=("$(field ns_per_call "$gb")")
  a_ppc+=("$(field cpu_ns_per_call "$ga")"); b_ppc+=("$(field cpu_ns_per_call "$gb")")
  r_rate+=("$(ratio "${a_rate[-1]}" "${b_rate[-1]}")")
  r_cpu+=("$(ratio "${a_cpu[-1]}" "${b_cpu[-1]}")")
  r_pp+=("$(ratio "${a_ppc[-1]}" "${b_ppc[-1]}")")
done

# ---- 3, 2, 5: CPU and RSS, drain, BPF run time, with one agent ----
prog_ids() { bpftool prog show 2>/dev/null | awk -F: '/^[0-9]+:/ {print $1}'; }
prog_stats() { # ID NAME RUN_TIME_NS RUN_CNT for each loaded program
  bpftool prog show 2>/dev/null | awk '/^[0-9]+:/ { id = $1; sub(":", "", id); name = ""; t = 0; c = 0
    for (i = 2; i <= NF; i++) { if ($i == "name") name = $(i+1); if ($i == "run_time_ns") t = $(i+1); if ($i == "run_cnt") c = $(i+1) }
    print id, name, t, c }'
}
prog_ids >"$out/progs.before" || true
start_agent
mode=$(curl -sf "http://127.0.0.1:$port/metrics" | grep -E '^socktrace_probe_info\{.*hook="accept"' | sed 's/.*mode="\([a-z]*\)".*/\1/' | head -1)
hz=$(getconf CLK_TCK)
# Steady state, not start-up: the runtime compiles the record path again, optimised, once
# it has run often enough (tiered compilation), on background threads. WARMUP seconds of
# paced load and quiet first, so neither measurement below pays for that.
if (( WARMUP > 0 )); then
  log "warm-up: ${WARMUP} s (half paced load, half quiet)"
  "$stload" accept $((WARMUP / 2)) "$RATE" >/dev/null
  sleep $((WARMUP - WARMUP / 2))
fi
# "Idle": no load from this script, but the agent traces the whole machine.
e0=$(metric '^socktrace_events_total\{.*type="accept"')
t0=$(cpu_ticks "$agent_pid"); sleep "$SECONDS_RATE"; t1=$(cpu_ticks "$agent_pid")
e1=$(metric '^socktrace_events_total\{.*type="accept"')
idle_cpu=$(awk -v d=$((t1 - t0)) -v s="$SECONDS_RATE" -v hz="$hz" 'BEGIN { printf "%.2f", 100 * d / hz / s }')
idle_records=$(awk -v e=$((e1 - e0)) -v s="$SECONDS_RATE" 'BEGIN { printf "%.0f", e / s }')
t0=$(cpu_ticks "$agent_pid"); w0=$(date +%s.%N)
lr=$("$stload" accept "$SECONDS_RATE" "$RATE"); echo "$lr" >>"$out/rate.txt"
t1=$(cpu_ticks "$agent_pid"); w1=$(date +%s.%N)
achieved=$(field rate "$lr")
load_cpu=$(awk -v d=$((t1 - t0)) -v a="$w0" -v b="$w1" -v hz="$hz" 'BEGIN { printf "%.2f", 100 * d / hz / (b - a) }')
# RssFile is the runtime's and the framework's mapped images (shared with every .NET
# process on the node); RssAnon is the agent's own heap; RssShmem its double-mapped code.
mem=$(awk '/^(VmRSS|VmHWM|RssAnon|RssFile|RssShmem):/ { printf "%s %d MiB, ", $1, $2 / 1024 }' "/proc/$agent_pid/status")

declare -a drain_rows
for threads in 1 2; do
  sleep 1
  ev0=$(metric '^socktrace_events_total\{.*type="accept"'); dr0=$(metric '^socktrace_ringbuf_drops_total')
  ld=$("$stload" eagain "$SECONDS_DRAIN" "$threads"); echo "$ld" >>"$out/drain.txt"
  sleep 1 # the reader drains at least every poll interval (100 ms)
  ev1=$(metric '^socktrace_events_total\{.*type="accept"'); dr1=$(metric '^socktrace_ringbuf_drops_total')
  calls=$(field calls "$ld"); secs=$(field seconds "$ld")
  drain_rows+=("$(awk -v t="$threads" -v c="$calls" -v s="$secs" -v e=$((ev1 - ev0)) -v d=$((dr1 - dr0)) \
    'BEGIN { printf "| drain, %d thread(s) | %.0f calls/s made, %.0f records/s consumed (%.2f%% of calls), %d dropped |", t, c / s, e / s, 100 * e / c, d }')")
done

bpf_rows=""
if command -v bpftool >/dev/null; then
  stats_was=$(sysctl -n kernel.bpf_stats_enabled)
  sysctl -qw kernel.bpf_stats_enabled=1
  prog_stats >"$out/bpf_stats.0"
  lp=$("$stload" accept "$SECONDS_ACCEPT"); echo "$lp" >>"$out/bpf_stats.load"
  prog_stats >"$out/bpf_stats.1"
  sysctl -qw kernel.bpf_stats_enabled="$stats_was"
  conns=$(field ops "$lp")
  # Only the programs this agent loaded: ids that were not there before it started.
  bpf_rows=$(awk -v n="$conns" -v cpu="$(field rate_per_cpu_s "$lp")" '
    FILENAME == ARGV[1] { before[$1] = 1; next }
    FILENAME == ARGV[2] { t0[$1] = $3; c0[$1] = $4; next }
    !($1 in before) && ($1 in t0) && $2 ~ /^st_/ && $4 > c0[$1] {
      c = $4 - c0[$1]; t = $3 - t0[$1]; total += t
      if (c / n >= 0.01) printf "| BPF %s | %.2f runs and %.0f ns per connection (%.0f ns per run) |\n", $2, c / n, t / n, t / c }
    END { printf "| BPF, all programs | %.0f ns per connection, of %.0f ns of load-thread CPU per connection with stats on |\n", total / n, 1e9 / cpu }
  ' "$out/progs.before" "$out/bpf_stats.0" "$out/bpf_stats.1")
fi
stop_agent

# ---- 2b. drain at a fixed rate, records written by a BPF loop ----
# A syscall per record caps the producer far below the reader (above). produce.bpf.c
# writes accept records straight into the agent's ring buffer from BPF_PROG_TEST_RUN, at
# each rate in PRODUCE_RATES, into an agent with a ring and poll interval sized for it.
map_ids() { bpftool map show 2>/dev/null | awk -F: '/^[0-9]+: ringbuf/ && / name st_events / {print $1}'; }
produce_rows=""
if command -v bpftool >/dev/null; then
  map_ids >"$out/maps.before"
  AGENT_ARGS="${AGENT_ARGS:-} --ring-buffer-bytes $PRODUCE_RING --poll-interval-ms $PRODUCE_POLL_MS" start_agent
  ring_id=$(map_ids | grep -vxFf "$out/maps.before" | head -1)
  for rate in $PRODUCE_RATES; do
    sleep 1
    ev0=$(metric '^socktrace_events_total\{.*type="accept"'); c0=$(cpu_ticks "$agent_pid")
    lp=$("$produce" "$produce_obj" "$ring_id" "$SECONDS_DRAIN" "$rate" 20000); echo "$lp" >>"$out/produce.txt"
    c1=$(cpu_ticks "$agent_pid")
    sleep 1 # one poll interval and more: everything written is read by now
    ev1=$(metric '^socktrace_events_total\{.*type="accept"')
    produce_rows+="$(awk -v target="$rate" -v w="$(field written "$lp")" -v r="$(field refused "$lp")" -v s="$(field seconds "$lp")" \
      -v e=$((ev1 - ev0)) -v c=$((c1 - c0)) -v hz="$hz" \
      'BEGIN { printf "| drain from BPF, paced to %.3g records/s | %.3g records/s written, %.3g records/s consumed (%.2f%% of written), %d refused by the full ring; agent %.0f%% of one core |", target, w / s, e / s, 100 * e / w, r, 100 * c / hz / s }')"$'\n'
  done
  stop_agent
fi
uptime >"$out/uptime.after"

# ---- 4. managed cost per record ----
bdn_rows=""
if [[ -z ${SKIP_BDN:-} ]]; then
  log "BenchmarkDotNet: record path"
  dotnet "$bench_dll" --filter '*' --artifacts "$out/bdn" >"$out/bdn.log" 2>&1
  bdn_rows=$(grep -E "^\| '" "$out/bdn.log" | awk -F'|' '{ gsub(/^ +| +$/, "", $2); gsub(/^ +| +$/, "", $3); gsub(/^ +| +$/, "", $6); printf "| per record: %s | %s, allocated %s |\n", $2, $3, $6 }')
fi

# ---- the table ----
cat <<EOF

SockTrace benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), $(nproc) CPUs, accept hook mode: ${mode:-?}
A = no agent, B = agent attached; $PAIRS interleaved A/B pairs; values are median [min..max]

| measurement | value |
|---|---|
| accept loop, connections/s (wall), A | $(stats "${a_rate[@]}") |
| accept loop, connections/s (wall), B | $(stats "${b_rate[@]}") |
| accept loop, B/A per pair (wall) | $(stats "${r_rate[@]}") |
| accept loop, connections per CPU-second of the load thread, A | $(stats "${a_cpu[@]}") |
| accept loop, connections per CPU-second of the load thread, B | $(stats "${b_cpu[@]}") |
| accept loop, B/A per pair (per CPU-second) | $(stats "${r_cpu[@]}") |
| connect-to-accept p50 us, A / B | $(stats "${a_p50[@]}") / $(stats "${b_p50[@]}") |
| connect-to-accept p99 us, A / B | $(stats "${a_p99[@]}") / $(stats "${b_p99[@]}") |
| getppid() ns/call (wall), A / B | $(stats "${a_pp[@]}") / $(stats "${b_pp[@]}") |
| getppid() CPU ns/call, A / B | $(stats "${a_ppc[@]}") / $(stats "${b_ppc[@]}") |
| getppid() B/A per pair (CPU) | $(stats "${r_pp[@]}") |
| A runs during which another process had tracepoint programs loaded (A is then not agent-free) | $contaminated of $PAIRS |
$(printf '%s\n' "${drain_rows[@]}")
${produce_rows%$'\n'}
| agent CPU, no load from this script (${idle_records} accept records/s from the rest of the machine) | ${idle_cpu}% of one core |
| agent CPU at ${achieved} accepts/s (paced to $RATE) | ${load_cpu}% of one core |
| agent memory after that | ${mem%, } |
${bdn_rows}
${bpf_rows}

load average before / after: $(awk '{print $(NF-2), $(NF-1), $NF}' "$out/uptime.before") / $(awk '{print $(NF-2), $(NF-1), $NF}' "$out/uptime.after")
raw lines: $out
EOF

# 6. The two sections with their own scripts (each prints its table; the build above is theirs).
if [[ -z ${SKIP_HOTPATH:-} ]]; then
  SKIP_BUILD=1 BENCH_OUT="$out/hotpath" scripts/bench-hotpath.sh
fi
if [[ -z ${SKIP_FOOTPRINT:-} ]]; then
  [[ -n ${SKIP_BUILD:-} && -x out/socktrace ]] || scripts/publish.sh out >/dev/null
  SKIP_BUILD=1 BENCH_OUT="$out/footprint" scripts/bench-footprint.sh
fi
