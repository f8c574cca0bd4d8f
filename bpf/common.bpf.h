/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Maps and helpers every SockTrace program shares. */
#ifndef SOCKTRACE_COMMON_BPF_H
#define SOCKTRACE_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "socktrace.h"

/* Sized by the agent before load (bpf_map__set_max_entries). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} st_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_COUNTER_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} st_counters SEC(".maps");

const volatile struct st_config st_cfg = {};

static __always_inline void st_count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&st_counters, &slot);

	if (v)
		*v += 1;
}

/* Reserve a record, counting the loss when the ring is full. */
static __always_inline void *st_reserve(__u32 size)
{
	void *rec = bpf_ringbuf_reserve(&st_events, size, 0);

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
