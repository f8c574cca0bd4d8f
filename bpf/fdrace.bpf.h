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

/* The last successful close of each (process, fd). LRU: closes vastly outnumber the
 * accepts that look them up, and only a recent one matters. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct st_fd_key);
	__type(value, struct st_close);
} st_closes SEC(".maps") __weak;

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
 * accept returned fd: was it closed by another thread of this process just before?
 * The kernel hands out the lowest free fd (alloc_fd(), fs/file.c), so a number one
 * thread just closed is the next another thread's accept gets, and a stale copy of
 * that number now names the new connection.
 */
static __always_inline void st_check_reuse_after_close(long fd, __u64 now)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct st_fd_key key = { .tgid = id >> 32, .fd = fd };
	struct st_close *closed = bpf_map_lookup_elem(&st_closes, &key);
	__u32 closer;
	__u64 gap;

	if (!closed)
		return;
	closer = closed->tid;
	gap = now - closed->ns;
	bpf_map_delete_elem(&st_closes, &key);
	if (closer != (__u32)id && gap <= st_cfg.reuse_window_ns)
		st_emit_race(ST_RACE_REUSE_AFTER_CLOSE, fd, now, gap, closer);
}

#endif
