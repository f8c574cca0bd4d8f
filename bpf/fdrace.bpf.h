/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* fd races: what the accept path shares with fdrace.bpf.c. */
#ifndef SOCKTRACE_FDRACE_BPF_H
#define SOCKTRACE_FDRACE_BPF_H

#include "common.bpf.h"

struct st_fd_key {
	__u32 tgid;
	__s32 fd;
};

/* The last successful close of one fd of a process, and which thread made it; ns 0 once an
 * accept consumed it. */
struct st_close {
	__u64 ns;
	__u32 tid;
	__u32 _pad;
};

/*
 * A process's closes of fds below ST_CLOSE_SLOTS, slot = fd, in the process's own task
 * storage (on its group leader): a close is two stores, an accept one load, and the table
 * goes when the process does. Made at the process's first close once it accepts.
 */
#define ST_CLOSE_SLOTS 1024

struct st_close_table {
	struct st_close slot[ST_CLOSE_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct st_close_table);
} st_close_tables SEC(".maps") __weak;

/* The closes of higher fds, and of every fd where the kernel has no task storage (before
 * 5.11). LRU: closes vastly outnumber the accepts and failed closes that look them up,
 * and only a recent one matters. */
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

static __always_inline int st_close_in_table(long fd)
{
	return st_task_storage() && fd >= 0 && fd < ST_CLOSE_SLOTS;
}

static __always_inline struct st_close_table *st_close_table(__u64 flags)
{
	return bpf_task_storage_get(&st_close_tables, bpf_get_current_task_btf()->group_leader, 0, flags);
}

/* The current process's last close of fd, or NULL. */
static __always_inline struct st_close *st_close_find(long fd)
{
	struct st_fd_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, .fd = fd };
	struct st_close_table *table;
	__u32 i;

	if (!st_close_in_table(fd))
		return bpf_map_lookup_elem(&st_closes, &key);
	table = st_close_table(0);
	/* Bounded again after the call, out of clang's sight (barrier_var): 6.1's verifier
	 * loses the bound of a register clang kept across it. */
	i = fd;
	barrier_var(i);
	if (!table || i >= ST_CLOSE_SLOTS)
		return NULL;
	return &table->slot[i];
}

/* fd was closed by the current thread at now. */
static __always_inline void st_close_note(long fd, __u64 now)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct st_fd_key key = { .tgid = id >> 32, .fd = fd };
	struct st_close value = { .ns = now, .tid = (__u32)id };
	struct st_close_table *table;
	struct st_close *slot;
	__u32 i;

	if (!st_close_in_table(fd)) {
		bpf_map_update_elem(&st_closes, &key, &value, BPF_ANY);
		return;
	}
	table = st_close_table(BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!table) {
		st_count(ST_COUNTER_PENDING_FULL);
		return;
	}
	i = fd;
	barrier_var(i);
	if (i >= ST_CLOSE_SLOTS)
		return;
	slot = &table->slot[i];
	slot->ns = now;
	slot->tid = (__u32)id;
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
 * would name the new connection. The close is consumed whoever made it, by a store (no map
 * update on the accept path): a later accept of the same number needs a later close.
 */
static __always_inline __u64 st_fd_closed_by_other(long fd)
{
	struct st_close *closed = st_close_find(fd);
	__u64 ns;

	if (!closed || !closed->ns)
		return 0;
	ns = closed->tid != (__u32)bpf_get_current_pid_tgid() ? closed->ns : 0;
	closed->ns = 0;
	return ns;
}

#endif
