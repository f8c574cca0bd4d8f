/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Maps and helpers every SockTrace program shares. */
#ifndef SOCKTRACE_COMMON_BPF_H
#define SOCKTRACE_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "socktrace.h"

/*
 * Shared by every feature file. __weak: each file's copy is the same definition, and
 * the static linker (bpftool gen object) keeps one of them.
 */

/* Sized by the agent before load (bpf_map__set_max_entries). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} st_events SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_COUNTER_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} st_counters SEC(".maps") __weak;

/* The only .rodata global, at offset 0: the agent writes it between open and load. */
const volatile struct st_config st_cfg __weak = {};

static __always_inline struct task_struct *st_current(void)
{
	return (struct task_struct *)bpf_get_current_task();
}

/* current->files->fdt: the calling process's fd table. */
static __always_inline struct fdtable *st_fdtable(void)
{
	return BPF_CORE_READ(st_current(), files, fdt);
}

/* The file in slot fd, or NULL when the slot is empty or out of range. */
static __always_inline struct file *st_file_at(struct fdtable *fdt, long fd)
{
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;

	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	return file;
}

/* The process's name, not the thread's ("worker-3"): bounded and stable as a label. */
static __always_inline void st_process_comm(char comm[ST_COMM_LEN])
{
	BPF_CORE_READ_STR_INTO((char (*)[ST_COMM_LEN])comm, st_current(), group_leader, comm);
}

static __always_inline void st_count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&st_counters, &slot);

	if (v)
		*v += 1;
}

/*
 * Reserve a record, counting every attempt and each loss when the ring is full, so the
 * agent can prove produced = delivered + dropped instead of trusting that nothing else
 * went missing.
 */
static __always_inline void *st_reserve(__u32 size)
{
	void *rec;

	st_count(ST_COUNTER_PRODUCED);
	rec = bpf_ringbuf_reserve(&st_events, size, 0);

	if (!rec)
		st_count(ST_COUNTER_RINGBUF_DROPS);
	return rec;
}

/*
 * No wakeup per record: the reader polls on a bounded interval and is woken only
 * when enough data is pending, so a busy accept path costs no extra context
 * switches (a wakeup is an irq_work plus a reader context switch per record).
 */
static __always_inline void st_submit(void *rec)
{
	__u64 pending = bpf_ringbuf_query(&st_events, BPF_RB_AVAIL_DATA);

	bpf_ringbuf_submit(rec, pending >= st_cfg.wakeup_bytes ? BPF_RB_FORCE_WAKEUP
							      : BPF_RB_NO_WAKEUP);
}

#endif
