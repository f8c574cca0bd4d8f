/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Listen queues: what the accept path and the state program share with listen.bpf.c. */
#ifndef SOCKTRACE_LISTEN_BPF_H
#define SOCKTRACE_LISTEN_BPF_H

#include "common.bpf.h"
#include <bpf/bpf_endian.h>

/*
 * Every listening socket seen, by the address of its struct sock: members of one
 * SO_REUSEPORT group, and listeners on two addresses of one port, are apart. Its accepts
 * are counted by the agent from the accept records, which name the listener. LRU:
 * listeners come and go with pods; one whose close was missed is evicted when the map
 * needs room.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct st_listen_value);
} st_listen SEC(".maps") __weak;

/* The listening sockets a SYN to one (netns, port) can reach. More members of one
 * SO_REUSEPORT group than this are not told apart there. */
#define ST_LISTEN_PORT_SLOTS 8

struct st_listen_port_key {
	__u32 netns;
	__u16 port;
	__u16 _pad;
};

struct st_listen_port {
	__u64 sk[ST_LISTEN_PORT_SLOTS]; /* 0: free */
};

/* For the hooks that see a packet but not the listener it reached (listen.bpf.c,
 * tracepoint mode): one lookup per SYN. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct st_listen_port_key);
	__type(value, struct st_listen_port);
} st_listen_ports SEC(".maps") __weak;

/* sk_acceptq_is_full() (include/net/sock.h): the queue holds one more than the backlog. */
static __always_inline int st_acceptq_full(struct sock *sk)
{
	return ST_READ(sk, sk_ack_backlog) > ST_READ(sk, sk_max_ack_backlog);
}

static __always_inline __u32 st_syn_queue_len(struct sock *sk)
{
	struct inet_connection_sock *icsk = st_cast(sk, struct inet_connection_sock);

	return ST_READ(icsk, icsk_accept_queue.qlen.counter);
}

/*
 * sk_drops_read() (include/net/sock.h): from 6.17 a socket may count its drops in
 * per-NUMA-node counters instead; TCP listeners do not, so sk_drops is the count.
 */
static __always_inline __u64 st_sk_drops(struct sock *sk)
{
	return (__u32)ST_READ(sk, sk_drops.counter);
}

/* Adds or removes sk in its (netns, port)'s slots. Slots of one port change only at
 * listen() and close(): a plain store, and a lost race costs a SYN's attribution. */
static __always_inline void st_listen_index(const struct st_listen_value *v, __u64 sk, int add)
{
	struct st_listen_port_key key = { .netns = v->netns, .port = v->port };
	struct st_listen_port *port = bpf_map_lookup_elem(&st_listen_ports, &key);
	int free = -1;

	if (!port) {
		struct st_listen_port first = { .sk = { sk } };

		if (add)
			bpf_map_update_elem(&st_listen_ports, &key, &first, BPF_NOEXIST);
		return;
	}
	for (int slot = 0; slot < ST_LISTEN_PORT_SLOTS; slot++) {
		if (port->sk[slot] == sk) {
			if (!add)
				port->sk[slot] = 0;
			return;
		}
		if (!port->sk[slot] && free < 0)
			free = slot;
	}
	if (add && free >= 0 && free < ST_LISTEN_PORT_SLOTS)
		port->sk[free] = sk;
}

/*
 * The listener's entry, made on first sight. The port from skc_num: at LISTEN it is set
 * (bind(), or inet_csk_listen_start()'s get_port() for an unbound socket, which runs just
 * after the state change: such a listener is indexed at its first accept instead).
 */
static __always_inline struct st_listen_value *st_listen_entry(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct st_listen_value first = {};
	struct st_listen_value *v;

	v = bpf_map_lookup_elem(&st_listen, &key);
	if (v) {
		__u16 port = ST_READ(sk, __sk_common.skc_num);

		if (v->port == port && v->netns == st_netns_of(sk))
			return v;
		if (!v->port && port) {
			v->port = port;
			st_listen_index(v, key, 1);
			return v;
		}
		/* A sock freed without its close seen (a failed listen() in kprobe mode, where no
		 * state change is traced), its memory now another listener's: start afresh. */
		st_listen_index(v, key, 0);
		bpf_map_delete_elem(&st_listen, &key);
	}
	first.netns = st_netns_of(sk);
	first.port = ST_READ(sk, __sk_common.skc_num);
	first.family = ST_READ(sk, __sk_common.skc_family);
	st_local_addr(sk, first.family, first.addr);
	first.drops_seen = st_sk_drops(sk);
	first.seen_ns = bpf_ktime_get_ns();
	first.limit = ST_READ(sk, sk_max_ack_backlog);
	/* Fails only when another CPU added it first: then the lookup finds that one. */
	bpf_map_update_elem(&st_listen, &key, &first, BPF_NOEXIST);
	v = bpf_map_lookup_elem(&st_listen, &key);
	if (v && v->port)
		st_listen_index(v, key, 1);
	return v;
}

/* The queues as they are now: what `ss -lnt` (Recv-Q, Send-Q) would show. */
static __always_inline void st_listen_queues(struct st_listen_value *v, struct sock *sk)
{
	v->depth = ST_READ(sk, sk_ack_backlog);
	v->limit = ST_READ(sk, sk_max_ack_backlog);
	v->syn_queue = st_syn_queue_len(sk);
	v->queues_ns = bpf_ktime_get_ns();
}

/* Seen at an overflow: counted, and its queues as they are now. */
static __always_inline void st_listen_overflowed(struct sock *sk)
{
	struct st_listen_value *v = st_listen_entry(sk);

	if (!v)
		return;
	__sync_fetch_and_add(&v->overflows, 1);
	st_listen_queues(v, sk);
}

/* A socket becomes a listener (inet_csk_listen_start(), or its CLOSE -> LISTEN). */
static __always_inline void st_listen_started(struct sock *sk)
{
	st_listen_entry(sk);
}

/* A listener closed (LISTEN -> CLOSE in tcp_close(), net/ipv4/tcp.c): its series go at
 * the next scrape; the other members of its SO_REUSEPORT group keep theirs. */
static __always_inline void st_listen_forget(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct st_listen_value *v = bpf_map_lookup_elem(&st_listen, &key);

	if (!v)
		return;
	st_listen_index(v, key, 0);
	bpf_map_delete_elem(&st_listen, &key);
}

#endif
