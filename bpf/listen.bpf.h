/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Listen queues: what the accept path shares with listen.bpf.c. */
#ifndef SOCKTRACE_LISTEN_BPF_H
#define SOCKTRACE_LISTEN_BPF_H

#include "common.bpf.h"

/*
 * Every listening socket seen at an accept or a listen overflow, by network namespace
 * and port: what `ss -lnt` and /proc/net/netstat show for one namespace at a time. LRU:
 * listeners come and go with pods; a gone one is evicted when the map needs room.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct st_listen_key);
	__type(value, struct st_listen_value);
} st_listen SEC(".maps") __weak;

/* sk_acceptq_is_full() (include/net/sock.h): the queue holds one more than the backlog. */
static __always_inline int st_acceptq_full(struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_ack_backlog) > BPF_CORE_READ(sk, sk_max_ack_backlog);
}

static __always_inline void st_listen_seen(struct sock *sk, int overflow)
{
	struct st_listen_key key = {};
	struct st_listen_value first = {};
	struct st_listen_value *v;

	key.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	key.port = BPF_CORE_READ(sk, __sk_common.skc_num);
	v = bpf_map_lookup_elem(&st_listen, &key);
	if (!v) {
		/* Fails only when another CPU added it first: then the lookup finds that one. */
		bpf_map_update_elem(&st_listen, &key, &first, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&st_listen, &key);
		if (!v)
			return;
	}
	if (overflow)
		__sync_fetch_and_add(&v->overflows, 1);
	v->depth = BPF_CORE_READ(sk, sk_ack_backlog);
	v->limit = BPF_CORE_READ(sk, sk_max_ack_backlog);
}

#endif
