// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A record producer for the drain benchmark: writes valid accept records into the
 * agent's own ring buffer (this object's st_events is replaced by the agent's map before
 * load), as fast as a BPF loop can, when run with BPF_PROG_TEST_RUN. No syscall per
 * record, so the reader, not the producer, is what gets measured.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "../../../bpf/socktrace.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} st_events SEC(".maps");

struct produce_args {
	__u32 records;
	__u16 lport;
	__u16 _pad;
};

struct loop_state {
	__u16 lport;
	__u32 written;
};

static long one(__u64 i, void *ctx)
{
	struct loop_state *state = ctx;
	struct st_accept_record *rec = bpf_ringbuf_reserve(&st_events, sizeof(*rec), 0);
	__u64 now = bpf_ktime_get_ns();

	if (!rec)
		return 0;
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->hdr.type = ST_RECORD_ACCEPT;
	rec->hdr.size = sizeof(*rec);
	rec->ret = 7;
	rec->lport = state->lport + (i & 7); /* eight listeners, as a node with a few servers */
	rec->family = 2;
	rec->enter_ns = now - 2000;
	rec->exit_ns = now;
	rec->established_ns = now - 1000;
	rec->peer_addr[0] = 127;
	__builtin_memcpy(rec->comm, "st-produce", 11);
	/* No wakeup: the agent polls, as it does for its own programs' records. */
	bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
	state->written++;
	return 0;
}

/* Returns how many of args->records it wrote; the rest found the ring full. */
SEC("syscall")
int produce(struct produce_args *args)
{
	struct loop_state state = { .lport = args->lport };
	/* A 32-bit load, so the register is zero-extended: the verifier's inlined bpf_loop
	 * compares all 64 bits of nr_loops with BPF_MAX_LOOPS (-E2BIG otherwise). */
	__u64 records = args->records;

	bpf_loop(records, one, &state, 0);
	return state.written;
}
