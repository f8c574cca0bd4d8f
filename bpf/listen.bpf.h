/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Listen queues: what the accept path shares with listen.bpf.c. */
#ifndef SOCKTRACE_LISTEN_BPF_H
#define SOCKTRACE_LISTEN_BPF_H

#include "common.bpf.h"
#include <bpf/bpf_endian.h>

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

/*
 * The port from inet_sport, which inet_csk_listen_start() sets, not skc_num: when a
 * listener bound to port 0 closes, tcp_set_state() releases the port and
 * __inet_put_port() (net/ipv4/inet_hashtables.c) zeroes skc_num before the
 * inet_sock_set_state tracepoint fires, so the close could not find the entry by it.
 */
static __always_inline void st_listen_key_of(struct st_listen_key *key, const struct sock *sk)
{
	key->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	key->port = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
}

static __always_inline void st_listen_seen(struct sock *sk, int overflow)
{
	struct st_listen_key key = {};
	struct st_listen_value first = {};
	struct st_listen_value *v;

	st_listen_key_of(&key, sk);
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

/* A listener closed (LISTEN -> CLOSE in tcp_close(), net/ipv4/tcp.c): its series go at
 * the next scrape. Another SO_REUSEPORT listener on the same port starts a new entry at
 * its next accept or overflow. */
static __always_inline void st_listen_forget(const struct sock *sk)
{
	struct st_listen_key key = {};

	st_listen_key_of(&key, sk);
	bpf_map_delete_elem(&st_listen, &key);
}

#endif
