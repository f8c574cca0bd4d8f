#!/usr/bin/env bash
# What a sockmap bypass would save on loopback, the opportunity that
# socktrace_loopback_local_pair_bytes_total measures: a TCP stream and a ping-pong between
# two processes over 127.0.0.1, through the kernel's stack (A) and with a cgroup sock_ops
# program plus an sk_msg redirect (B, tests/SockTrace.Benchmarks/sockmap/sockmap.bpf.c)
# handing each sendmsg() to the peer socket directly. Each run is in a network namespace
# of its own, whose TCP InSegs show whether segments crossed the stack. A and B interleave.
# Run as root; leaves nothing behind (its cgroup, bpffs mount and namespaces go at exit).
# Knobs: ROUNDS (3), STREAM_SECONDS (5), CHUNK (65536), PINGS (20000), SIZE (64).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3} stream_seconds=${STREAM_SECONDS:-5} chunk=${CHUNK:-65536} pings=${PINGS:-20000} size=${SIZE:-64}
cgroot=${CGROOT:-/sys/fs/cgroup/unified}
[ -w "$cgroot/cgroup.procs" ] || { echo "bench-sockmap: no writable cgroup v2 at $cgroot" >&2; exit 1; }
# No dot in the path: libbpf turns dots in pin paths into underscores.
out=$(mktemp -d /tmp/socktrace-sockmap-XXXXXX)
cg="$cgroot/socktrace-sockmap-$$"
src=tests/SockTrace.Benchmarks/sockmap

cleanup() {
  [ -d "$cg" ] && { bpftool cgroup detach "$cg" sock_ops pinned "$out/bpffs/progs/bench_sockops" 2>/dev/null || true; rmdir "$cg" 2>/dev/null || true; }
  umount "$out/bpffs" 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT

bpftool btf dump file /sys/kernel/btf/vmlinux format c > "$out/vmlinux.h"
clang -g -O2 -Wall -target bpf -I"$out" -c "$src/sockmap.bpf.c" -o "$out/sockmap.bpf.o"
cc -O2 -Wall -o "$out/loopback_bench" "$src/loopback_bench.c"

# The programs: pinned in a bpffs of our own, attached to a cgroup of our own.
mkdir -p "$out/bpffs" && mount -t bpf bpf "$out/bpffs"
mkdir "$cg"
mkdir "$out/bpffs/maps"
bpftool prog loadall "$out/sockmap.bpf.o" "$out/bpffs/progs" pinmaps "$out/bpffs/maps"
bpftool cgroup attach "$cg" sock_ops pinned "$out/bpffs/progs/bench_sockops"
bpftool prog attach pinned "$out/bpffs/progs/bench_redirect" msg_verdict pinned "$out/bpffs/maps/bench_socks"

# ARGS... run in a fresh network namespace (lo up), in cgroup $1 (or none); prints the
# bench's line and the namespace's TCP InSegs afterwards.
run() {
  local group=$1; shift
  unshare -n sh -c '
    ip link set lo up
    [ "$0" = none ] || echo $$ > "$0/cgroup.procs"
    "$@"
    awk "/^Tcp:/ { if (!h) { for (i = 1; i <= NF; i++) if (\$i == \"InSegs\") c = i; h = 1 } else print \"  tcp_in_segs=\" \$c }" /proc/net/snmp
  ' "$group" "$@"
}

echo "kernel $(uname -r); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  for mode in stack sockmap; do
    group=none; [ $mode = sockmap ] && group=$cg
    echo "round $r $mode: $(run "$group" "$out/loopback_bench" stream "$stream_seconds" "$chunk" | tr '\n' ' ')"
    echo "round $r $mode: $(run "$group" "$out/loopback_bench" pingpong "$pings" "$size" | tr '\n' ' ')"
  done
done
echo "load after $(cut -d' ' -f1-3 /proc/loadavg)"
