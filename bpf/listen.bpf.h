/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Listen queues: what the accept path shares with listen.bpf.c. */
#ifndef SOCKTRACE_LISTEN_BPF_H
#define SOCKTRACE_LISTEN_BPF_H

#include "common.bpf.h"
#include <bpf/bpf_endian.h>

#define ST_AF_INET 2
#define ST_AF_INET6 10

/*
 * Every listening socket seen, by the address of its struct sock: members of one
 * SO_REUSEPORT group, and listeners on two addresses of one port, are apart. LRU:
 * listeners come and go with pods; one whose close was missed is evicted when the map
 * needs room.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct st_listen_value);
} st_listen SEC(".maps") __weak;

/* Slots of one (netns, port) in st_listen_ports: the listening sockets a SYN to that port
 * can reach. More members of one SO_REUSEPORT group than this are not told apart there. */
#define ST_LISTEN_PORT_SLOTS 8

struct st_listen_port_key {
	__u32 netns;
	__u16 port;
	__u16 slot;
};

/*
 * The listeners of each (netns, port), for the hooks that see a packet but not the
 * listener it reached (listen.bpf.c, tracepoint mode).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct st_listen_port_key);
	__type(value, __u64);
} st_listen_ports SEC(".maps") __weak;

/*
 * Accepts per listening socket and accepting process: the processes that share one
 * listener are its workers. LRU; the agent removes a closed listener's workers.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct st_listen_worker_key);
	__type(value, struct st_listen_worker_value);
} st_listen_workers SEC(".maps") __weak;

/* sk_acceptq_is_full() (include/net/sock.h): the queue holds one more than the backlog. */
static __always_inline int st_acceptq_full(struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_ack_backlog) > BPF_CORE_READ(sk, sk_max_ack_backlog);
}

static __always_inline __u32 st_syn_queue_len(struct sock *sk)
{
	return BPF_CORE_READ((struct inet_connection_sock *)sk, icsk_accept_queue.qlen.counter);
}

/* The network namespace's inode number, as in /proc/PID/ns/net. */
static __always_inline __u32 st_netns_of(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/*
 * sk_drops_read() (include/net/sock.h): from 6.17 a socket may count its drops in
 * per-NUMA-node counters instead; TCP listeners do not, so sk_drops is the count.
 */
static __always_inline __u64 st_sk_drops(struct sock *sk)
{
	return (__u32)BPF_CORE_READ(sk, sk_drops.counter);
}

static __always_inline void st_listen_index(const struct st_listen_value *v, __u64 sk)
{
	struct st_listen_port_key key = { .netns = v->netns, .port = v->port };

	for (__u16 slot = 0; slot < ST_LISTEN_PORT_SLOTS; slot++) {
		__u64 *held;

		key.slot = slot;
		held = bpf_map_lookup_elem(&st_listen_ports, &key);
		if (held && *held == sk)
			return;
		if (!held && !bpf_map_update_elem(&st_listen_ports, &key, &sk, BPF_NOEXIST))
			return;
	}
}

static __always_inline void st_listen_unindex(const struct st_listen_value *v, __u64 sk)
{
	struct st_listen_port_key key = { .netns = v->netns, .port = v->port };

	for (__u16 slot = 0; slot < ST_LISTEN_PORT_SLOTS; slot++) {
		__u64 *held;

		key.slot = slot;
		held = bpf_map_lookup_elem(&st_listen_ports, &key);
		if (held && *held == sk)
			bpf_map_delete_elem(&st_listen_ports, &key);
	}
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
		__u16 port = BPF_CORE_READ(sk, __sk_common.skc_num);

		if (v->port == port && v->netns == st_netns_of(sk))
			return v;
		if (!v->port && port) {
			v->port = port;
			st_listen_index(v, key);
			return v;
		}
		/* A sock freed without its close seen (a failed listen() in kprobe mode, where no
		 * state change is traced), its memory now another listener's: start afresh. */
		st_listen_unindex(v, key);
		bpf_map_delete_elem(&st_listen, &key);
	}
	first.netns = st_netns_of(sk);
	first.port = BPF_CORE_READ(sk, __sk_common.skc_num);
	first.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (first.family == ST_AF_INET)
		BPF_CORE_READ_INTO((__u32 *)first.addr, sk, __sk_common.skc_rcv_saddr);
	else
		BPF_CORE_READ_INTO(&first.addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	first.drops_seen = st_sk_drops(sk);
	first.seen_ns = bpf_ktime_get_ns();
	first.limit = BPF_CORE_READ(sk, sk_max_ack_backlog);
	/* Fails only when another CPU added it first: then the lookup finds that one. */
	bpf_map_update_elem(&st_listen, &key, &first, BPF_NOEXIST);
	v = bpf_map_lookup_elem(&st_listen, &key);
	if (v && v->port)
		st_listen_index(v, key);
	return v;
}

/* The queues as they are now: what `ss -lnt` (Recv-Q, Send-Q) would show. */
static __always_inline void st_listen_queues(struct st_listen_value *v, struct sock *sk)
{
	v->depth = BPF_CORE_READ(sk, sk_ack_backlog);
	v->limit = BPF_CORE_READ(sk, sk_max_ack_backlog);
	v->syn_queue = st_syn_queue_len(sk);
}

/* Seen at an accept() call on it, or at an overflow (counted when overflow is set). */
static __always_inline void st_listen_seen(struct sock *sk, int overflow)
{
	struct st_listen_value *v = st_listen_entry(sk);

	if (!v)
		return;
	if (overflow)
		__sync_fetch_and_add(&v->overflows, 1);
	st_listen_queues(v, sk);
}

/* A socket becomes a listener (inet_csk_listen_start(), or its CLOSE -> LISTEN). */
static __always_inline void st_listen_started(struct sock *sk)
{
	st_listen_entry(sk);
}

/* accept() returned a connection from this listener, in the current process. A map
 * update only at a process's first accept from a listener; lookups after that. */
static __always_inline void st_listen_accepted(__u64 sk)
{
	struct st_listen_value *v = bpf_map_lookup_elem(&st_listen, &sk);
	struct st_listen_worker_key wkey = { .sk = sk, .tgid = bpf_get_current_pid_tgid() >> 32 };
	struct st_listen_worker_value *w;

	if (!v)
		return;
	__sync_fetch_and_add(&v->accepts, 1);
	w = bpf_map_lookup_elem(&st_listen_workers, &wkey);
	if (!w) {
		struct st_listen_worker_value first = { .first_ns = bpf_ktime_get_ns() };

		st_process_comm(first.comm);
		bpf_map_update_elem(&st_listen_workers, &wkey, &first, BPF_NOEXIST);
		w = bpf_map_lookup_elem(&st_listen_workers, &wkey);
		if (!w)
			return;
	}
	__sync_fetch_and_add(&w->accepts, 1);
}

/* A listener closed (LISTEN -> CLOSE in tcp_close(), net/ipv4/tcp.c): its series go at
 * the next scrape; the other members of its SO_REUSEPORT group keep theirs. */
static __always_inline void st_listen_forget(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct st_listen_value *v = bpf_map_lookup_elem(&st_listen, &key);

	if (!v)
		return;
	st_listen_unindex(v, key);
	bpf_map_delete_elem(&st_listen, &key);
}

#endif
