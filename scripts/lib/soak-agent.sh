# Shared by scripts/soak.sh and scripts/soak-churn.sh (sourced): starting the built agent on
# a port of its own and reading what it exports. Expects $work (a scratch directory),
# $agent_dll and log() from the script that sources it; sets $metrics_port and $agent_pid.

free_port() { # a port in 20000-29999 that nothing listens on
  local p
  while p=$(shuf -i 20000-29999 -n 1); ss -Htln "sport = :$p" | grep -q .; do :; done
  echo "$p"
}

# start_agent [ARG]...: the agent with these flags and $AGENT_ARGS, in the background,
# its output in $work/agent.log; returns once /healthz answers (exits if it never does).
start_agent() {
  metrics_port=$(free_port)
  # shellcheck disable=SC2086
  dotnet "$agent_dll" --urls "http://127.0.0.1:$metrics_port" "$@" ${AGENT_ARGS:-} >"$work/agent.log" 2>&1 &
  agent_pid=$!
  for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$metrics_port/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$agent_pid" 2>/dev/null || { cat "$work/agent.log" >&2; exit 1; }
    sleep 0.1
  done
  log "agent not healthy"
  cat "$work/agent.log" >&2
  exit 1
}

scrape() { curl -fs "http://127.0.0.1:$metrics_port/metrics"; }

# metric_sum METRIC [LABEL_MATCH] < EXPOSITION: the sum of a metric's samples whose labels
# contain LABEL_MATCH.
metric_sum() {
  awk -v m="$1" -v l="${2:-}" '$0 !~ /^#/ { n = $1; sub(/\{.*/, "", n); if (n == m && index($0, l)) s += $NF } END { printf "%.0f", s }'
}

# rss_kb [FIELD]: a /proc/PID/status field of the agent (VmRSS by default), in KiB.
rss_kb() { awk -v f="${1:-VmRSS}:" '$1 == f { print $2 }' "/proc/$agent_pid/status"; }

# rss_flat WARMUP UNIT SAMPLE...: after the first WARMUP samples (KiB), prints their range and
# fails when the largest is more than 10% above the smallest. UNIT names a sample ("batches").
rss_flat() {
  local warmup=$1 unit=$2 lo hi growth
  shift 2
  (($# > warmup)) || return 0
  local steady=("${@:warmup+1}")
  lo=$(printf '%s\n' "${steady[@]}" | sort -n | head -1)
  hi=$(printf '%s\n' "${steady[@]}" | sort -n | tail -1)
  growth=$(echo "($hi - $lo) * 100 / $lo" | bc -l)
  printf '\nRSS after %d warm-up %s: %.1f to %.1f MiB (%.1f%%)\n' "$warmup" "$unit" \
    "$(echo "$lo / 1024" | bc -l)" "$(echo "$hi / 1024" | bc -l)" "$growth"
  if (($(echo "$growth > 10" | bc))); then
    log "RSS grew by more than 10% after warm-up"
    return 1
  fi
}
