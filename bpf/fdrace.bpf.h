/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* fd races: what the accept path shares with fdrace.bpf.c. */
#ifndef SOCKTRACE_FDRACE_BPF_H
#define SOCKTRACE_FDRACE_BPF_H

#include "common.bpf.h"

struct st_fd_key {
	__u32 tgid;
	__s32 fd;
};

struct st_close {
	__u64 ns;
	__u32 tid;
	__u32 _pad;
};

/* The last successful close of each (process, fd), and which thread made it; ns 0 once an
 * accept consumed it. LRU: closes vastly outnumber the accepts and failed closes that look
 * them up, and only a recent one matters. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct st_fd_key);
	__type(value, struct st_close);
} st_closes SEC(".maps") __weak;

/*
 * Processes that accept on a TCP/IP listener, one bit per tgid. Only they can race an
 * accept (a dup2 onto its reservation, a close of a number it hands out), so the close and
 * dup hooks, which run on every close() and dup2() of every process on the node, stop at
 * one bit test for all the others. An array indexed by tgid: no hash, and no helper call
 * (the verifier inlines array lookups). The agent sizes it from kernel.pid_max at load;
 * a tgid beyond that (pid_max raised later) counts as accepting, which costs time, never
 * a race. Bits are never cleared: a reused pid costs its new process the full hook.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536); /* pid_max / 64: the default 4194304 */
	__type(key, __u32);
	__type(value, __u64);
} st_acceptors SEC(".maps") __weak;

/* Set at every accept, so a bit lost to two CPUs setting bits of one word at once (a
 * plain read-modify-write: atomic OR needs BPF ISA v3 and 5.12) comes back at the next. */
static __always_inline void st_mark_acceptor(__u32 tgid)
{
	__u32 word = tgid / 64;
	__u64 *bits = bpf_map_lookup_elem(&st_acceptors, &word);
	__u64 bit = 1ULL << (tgid % 64);

	if (bits && !(*bits & bit))
		*bits |= bit;
}

static __always_inline int st_is_acceptor(__u32 tgid)
{
	__u32 word = tgid / 64;
	__u64 *bits = bpf_map_lookup_elem(&st_acceptors, &word);

	return !bits || ((*bits >> (tgid % 64)) & 1);
}

static __always_inline void st_emit_race(__u32 kind, long fd, __u64 now, __u64 gap_ns, __u32 other_tid)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct st_fd_race_record *rec = st_reserve(sizeof(*rec));

	if (!rec)
		return;
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->hdr.type = ST_RECORD_FD_RACE;
	rec->hdr.size = sizeof(*rec);
	rec->pid = id >> 32;
	rec->tid = (__u32)id;
	rec->fd = fd;
	rec->kind = kind;
	rec->ts_ns = now;
	rec->gap_ns = gap_ns;
	rec->other_tid = other_tid;
	rec->cgroup_id = bpf_get_current_cgroup_id();
	st_process_comm(rec->comm);
	st_submit(rec);
}

/*
 * accept returned fd: when did another thread of this process last close that number?
 * The kernel hands out the lowest free fd (alloc_fd(), fs/file.c), so on a thread-pool
 * server a worker's close is routinely followed by the acceptor's next accept getting the
 * same number: no race, but the window in which a stale copy of the number in the worker
 * would name the new connection. The close is consumed whoever made it, by a store through
 * the lookup (no map update on the accept path): a later accept of the same number needs a
 * later close.
 */
static __always_inline __u64 st_fd_closed_by_other(long fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct st_fd_key key = { .tgid = id >> 32, .fd = fd };
	struct st_close *closed = bpf_map_lookup_elem(&st_closes, &key);
	__u64 ns;

	if (!closed || !closed->ns)
		return 0;
	ns = closed->tid != (__u32)id ? closed->ns : 0;
	closed->ns = 0;
	return ns;
}

#endif
