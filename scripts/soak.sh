#!/usr/bin/env bash
# Soak: CONNECTIONS loopback connections through the running agent, in batches. After each
# batch the agent's RSS is sampled and /metrics must count exactly the accepts made on the
# soak's own port, no errors on it, and no record lost. It stops by itself: after all
# connections, at the first wrong count, or after MAX_SECONDS.
# Prints one markdown table (SOAK.md records a run). Run as root.
# Knobs (environment): CONNECTIONS (1000000), BATCH (50000), WARMUP_BATCHES (2),
# MAX_SECONDS (3600), AGENT_ARGS (extra agent flags), SKIP_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

CONNECTIONS=${CONNECTIONS:-1000000}
BATCH=${BATCH:-50000}
WARMUP_BATCHES=${WARMUP_BATCHES:-2}
MAX_SECONDS=${MAX_SECONDS:-3600}
work=$(mktemp -d /tmp/socktrace-soak.XXXXXX)
agent_dll=$root/agent/SockTrace.Agent/bin/Release/net10.0/socktrace.dll
agent_pid=

log() { echo "soak: $*" >&2; }

cleanup() {
  if [[ -n $agent_pid ]] && kill -0 "$agent_pid" 2>/dev/null; then
    kill -TERM "$agent_pid"
    wait "$agent_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -z ${SKIP_BUILD:-} ]]; then
  scripts/build.sh >&2
fi

# The load: one process, one listener on a fixed port, COUNT connect/accept/close cycles.
# The client closes with RST (SO_LINGER 0), so no TIME_WAIT piles up and a million
# connections never run out of ephemeral ports.
cat >"$work/soakload.c" <<'C'
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) { perror(what); exit(1); }

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	long count, i;
	int one = 1, lfd;

	if (argc != 3)
		return 2;
	addr.sin_port = htons(atoi(argv[1]));
	count = atol(argv[2]);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		die("socket");
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 128))
		die("bind/listen");
	for (i = 0; i < count; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0), a;

		if (c < 0 || connect(c, (struct sockaddr *)&addr, sizeof(addr)))
			die("connect");
		a = accept4(lfd, NULL, NULL, 0);
		if (a < 0)
			die("accept4");
		setsockopt(c, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		close(c);
		close(a);
	}
	printf("%ld\n", i);
	return 0;
}
C
cc -O2 -Wall -Werror -o "$work/soakload" "$work/soakload.c"

source scripts/lib/soak-agent.sh
load_port=$(free_port)
start_agent

port_label="port=\"$load_port\""
# RssAnon is the heap (managed and native); RssFile is mapped code, which grows as more of
# the runtime's and the agent's code is touched and is shared with the page cache.
echo "| batch | connections | seconds | conn/s | accepts on /metrics | errors | ring drops | agent RSS (MiB) | anon | file |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
done_total=0 batch=0 status=0
rss_samples=()
start=$SECONDS
while ((done_total < CONNECTIONS)); do
  if ((SECONDS - start >= MAX_SECONDS)); then
    log "stopping after ${MAX_SECONDS}s (MAX_SECONDS) with $done_total connections"
    break
  fi
  n=$((CONNECTIONS - done_total < BATCH ? CONNECTIONS - done_total : BATCH))
  t0=$(date +%s.%N)
  made=$("$work/soakload" "$load_port" "$n")
  t1=$(date +%s.%N)
  done_total=$((done_total + made))
  batch=$((batch + 1))
  # Records reach the agent within its poll interval; wait for the count, then check
  # that it is exact (a surplus would show too).
  seen=0
  for _ in $(seq 100); do
    seen=$(scrape | metric_sum socktrace_accepts_total "$port_label")
    ((seen >= done_total)) && break
    sleep 0.1
  done
  sleep 0.3
  seen=$(scrape | metric_sum socktrace_accepts_total "$port_label")
  errors=$(scrape | metric_sum socktrace_accept_errors_total "$port_label")
  drops=$(scrape | metric_sum socktrace_ringbuf_drops_total)
  rss=$(rss_kb)
  rss_samples+=("$rss")
  printf '| %d | %d | %.1f | %.0f | %d | %d | %d | %.1f | %.1f | %.1f |\n' "$batch" "$done_total" "$(echo "$t1 - $t0" | bc)" \
    "$(echo "$made / ($t1 - $t0)" | bc -l)" "$seen" "$errors" "$drops" "$(echo "$rss / 1024" | bc -l)" \
    "$(echo "$(rss_kb RssAnon) / 1024" | bc -l)" "$(echo "$(rss_kb RssFile) / 1024" | bc -l)"
  if ((seen != done_total || errors != 0 || drops != 0)); then
    log "count mismatch after batch $batch: made $done_total, /metrics says $seen accepts, $errors errors, $drops drops"
    status=1
    break
  fi
done

# RSS after warm-up: the largest sample within 10% of the smallest.
rss_flat "$WARMUP_BATCHES" batches "${rss_samples[@]}" || status=1
printf 'connections: %d of %d in %d s; exact counts: %s\n' "$done_total" "$CONNECTIONS" "$((SECONDS - start))" "$([[ $status == 0 ]] && echo yes || echo NO)"
exit $status
