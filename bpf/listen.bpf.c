// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Listen overflows and SYN-queue drops, per listening socket.
 *
 * The kernel counts an overflow (LINUX_MIB_LISTENOVERFLOWS, ListenOverflows in
 * /proc/net/netstat, one namespace at a time) in three places, each right after an
 * sk_acceptq_is_full() check on the listener:
 *  - tcp_conn_request() (net/ipv4/tcp_input.c), for a SYN; IPv4 and IPv6 share it;
 *  - tcp_v4_syn_recv_sock() (net/ipv4/tcp_ipv4.c), for the handshake's last ACK;
 *  - tcp_v6_syn_recv_sock() (net/ipv6/tcp_ipv6.c), likewise, except for an IPv4 packet on
 *    a dual-stack listener, which it hands to tcp_v4_syn_recv_sock() before its check.
 *
 * kprobe mode makes the same check on entry to those three functions. On 6.1, attaching
 * fentry to either syn_recv_sock function fails with ENOTSUPP (measured under the test
 * guest), so the hook has no fentry programs. On entry to tcp_conn_request() the program
 * also tells a SYN that the full SYN queue drops first, with syncookies off: the kernel
 * counts that one as TCPReqQFullDrop, not as an overflow.
 *
 * tracepoint mode, where kprobes are missing, needs two BTF tracepoints:
 *  - skb:kfree_skb, for the last ACK: from 6.15 tcp_check_req() (net/ipv4/tcp_minisocks.c)
 *    frees it with SKB_DROP_REASON_TCP_LISTEN_OVERFLOW, and the tracepoint carries the
 *    listener as rx_sk (since 6.11). Neither exists on 6.1: the program does not load there,
 *    so the mode is not offered.
 *  - skb:consume_skb, for the SYN: tcp_conn_request() drops it without a reason, and
 *    tcp_rcv_state_process() consumes it as if it had been answered. The listener is not
 *    an argument, so the program finds the listeners of the SYN's (netns, port) in
 *    st_listen_ports and asks which one's sk_drops went up: tcp_listendrop() counts every
 *    SYN tcp_conn_request() drops there. Then the listener's state says why, in the
 *    order tcp_conn_request() checks it: a full SYN queue without syncookies
 *    (TCPReqQFullDrop), else a full accept queue (ListenOverflows). A SYN no listener
 *    dropped was answered, with a cookie or not (syn_answered()).
 */
#include "listen.bpf.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6


static __always_inline void count_if_full(struct sock *sk)
{
	if (st_acceptq_full(sk))
		st_listen_overflowed(sk);
}

static __always_inline void v6_syn_recv_sock(struct sock *sk, struct sk_buff *skb)
{
	if (ST_READ(skb, protocol) != bpf_htons(ETH_P_IP))
		count_if_full(sk);
}

/*
 * An skb freed with a reason while a listener held it. TCP_LISTEN_OVERFLOW is also the
 * reason when syn_recv_sock() failed for want of memory or a route (exit_nonewsk): only a
 * full queue is an overflow. Any other drop moves sk_drops too, which the SYN path must
 * not take for its own.
 */
static __always_inline void listener_dropped(struct sock *sk, int reason)
{
	struct st_listen_value *v;

	if (!sk || ST_READ(sk, __sk_common.skc_state) != TCP_LISTEN)
		return;
	v = st_listen_entry(sk);
	if (!v)
		return;
	if (reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_TCP_LISTEN_OVERFLOW) &&
	    st_acceptq_full(sk))
		__sync_fetch_and_add(&v->overflows, 1);
	v->drops_seen = st_sk_drops(sk);
	st_listen_queues(v, sk);
}

/* inet_csk_reqsk_queue_is_full() (include/net/inet_connection_sock.h): "more than the
 * backlog" since 6.10 and in the stable kernels that took the fix. */
static __always_inline int syn_queue_full(struct sock *sk)
{
	return st_syn_queue_len(sk) > ST_READ(sk, sk_max_ack_backlog);
}

static __always_inline __u8 syncookies_of(struct sock *sk)
{
	return ST_READ(sk, __sk_common.skc_net.net, ipv4.sysctl_tcp_syncookies);
}

/* Why tcp_conn_request() drops a SYN, in the order it checks: a full SYN queue with
 * syncookies off (TCPReqQFullDrop), then a full accept queue (ListenOverflows). */
static __always_inline void count_syn_drop(struct st_listen_value *v, struct sock *sk)
{
	if (syn_queue_full(sk) && !syncookies_of(sk))
		__sync_fetch_and_add(&v->syn_drops, 1);
	else if (st_acceptq_full(sk))
		__sync_fetch_and_add(&v->overflows, 1);
	st_listen_queues(v, sk);
}

/*
 * On entry to tcp_conn_request() (kprobe mode): the SYN is about to be checked. One that
 * passes both checks is answered with a cookie (SyncookiesSent) where syncookies are on and
 * the SYN queue is full, or always with syncookies = 2 (tcp_syn_flood_action()).
 */
static __always_inline void conn_request(struct sock *sk)
{
	__u8 cookies = syncookies_of(sk);
	int synq_full = syn_queue_full(sk);
	struct st_listen_value *v;

	if (!synq_full && cookies != 2 && !st_acceptq_full(sk))
		return;
	v = st_listen_entry(sk);
	if (!v)
		return;
	if ((synq_full && !cookies) || st_acceptq_full(sk)) {
		count_syn_drop(v, sk);
		return;
	}
	__sync_fetch_and_add(&v->cookies, 1);
	st_listen_queues(v, sk);
}

/*
 * A SYN the listener answered (tracepoint mode): with a cookie where syncookies are on and
 * it found the SYN queue full, or always with syncookies = 2. A cookie adds no request, a
 * normal answer adds one, so a full queue that did not grow since the listener's last SYN
 * tells the cookie, also when this SYN's own request made the queue full.
 */
static __always_inline void syn_answered(struct st_listen_value *v, struct sock *sk)
{
	__u8 cookies = syncookies_of(sk);
	__u32 qlen = st_syn_queue_len(sk);

	if (cookies == 2 || (cookies && qlen > ST_READ(sk, sk_max_ack_backlog) && qlen == v->syn_queue))
		__sync_fetch_and_add(&v->cookies, 1);
	st_listen_queues(v, sk);
}

/*
 * The listener of this (netns, port) that dropped the SYN, told by its sk_drops. One that
 * dropped nothing answered it; which one is known only when the port has one listener,
 * so the cookies of a SO_REUSEPORT group's members are not counted in this mode.
 */
static __always_inline void syn_consumed(__u32 netns, __u16 port)
{
	struct st_listen_port_key key = { .netns = netns, .port = port };
	struct st_listen_port *slots = bpf_map_lookup_elem(&st_listen_ports, &key);
	struct st_listen_value *only = NULL;
	__u64 only_sk = 0;
	int candidates = 0;

	if (!slots)
		return;
	for (int slot = 0; slot < ST_LISTEN_PORT_SLOTS; slot++) {
		struct st_listen_value *v;
		__u64 held = slots->sk[slot], drops, seen;
		struct sock *sk;

		if (!held)
			continue;
		v = bpf_map_lookup_elem(&st_listen, &held);
		if (!v)
			continue;
		sk = st_cast(held, struct sock);
		candidates++;
		only = v;
		only_sk = held;
		drops = st_sk_drops(sk);
		seen = v->drops_seen;
		if (drops == seen)
			continue;
		/* Another CPU's SYN to the same listener may have taken this change. */
		if (__sync_val_compare_and_swap(&v->drops_seen, seen, drops) != seen)
			continue;
		count_syn_drop(v, sk);
		return;
	}
	if (candidates == 1 && only)
		syn_answered(only, st_cast(only_sk, struct sock));
}

/*
 * A consumed skb that is a received SYN handed to a listener: tcp_v4_rcv() and
 * tcp_v6_rcv() clear skb->dev before a listener sees it, and nothing owns a received skb,
 * so transmitted skbs (every one with a device or an owner) leave at the first test.
 */
static __always_inline void skb_consumed(struct sk_buff *skb)
{
	unsigned char *head;
	unsigned long refdst;
	__u64 network;
	struct tcphdr *th;
	__u16 proto;
	__u8 l4 = 0;

	if (ST_READ(skb, dev) || ST_READ(skb, sk))
		return;
	proto = ST_READ(skb, protocol);
	head = ST_READ(skb, head);
	network = (__u64)head + ST_READ(skb, network_header);
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = st_cast(network, struct iphdr);

		l4 = ST_READ(iph, protocol);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = st_cast(network, struct ipv6hdr);

		l4 = ST_READ(ip6h, nexthdr);
	}
	if (l4 != IPPROTO_TCP)
		return;
	th = st_cast((__u64)head + ST_READ(skb, transport_header), struct tcphdr);
	if (st_casts() ? !BPF_CORE_READ_BITFIELD(th, syn) || BPF_CORE_READ_BITFIELD(th, ack)
		       : !BPF_CORE_READ_BITFIELD_PROBED(th, syn) || BPF_CORE_READ_BITFIELD_PROBED(th, ack))
		return;
	/* The input route's device is in the namespace the SYN arrived in. */
	refdst = ST_READ(skb, _skb_refdst) & ~1UL;
	if (!refdst)
		return;
	struct dst_entry *dst = st_cast(refdst, struct dst_entry);

	syn_consumed(ST_READ(dst, dev, nd_net.net, ns.inum), bpf_ntohs(ST_READ(th, dest)));
}

/* ---- hook "listen_overflow" ---- */

SEC("kprobe/tcp_conn_request")
int BPF_KPROBE(st_kp_tcp_conn_request, void *rsk_ops, void *af_ops, struct sock *sk)
{
	conn_request(st_cast(sk, struct sock));
	return 0;
}

/* Seen at listen() in this mode too, so that a listener that never accepts is counted and
 * the members of a SO_REUSEPORT group are numbered in the order they listened. */
SEC("kprobe/inet_csk_listen_start")
int BPF_KPROBE(st_kp_inet_csk_listen_start, struct sock *sk)
{
	st_listen_started(st_cast(sk, struct sock));
	return 0;
}

SEC("kprobe/tcp_v4_syn_recv_sock")
int BPF_KPROBE(st_kp_tcp_v4_syn_recv_sock, struct sock *sk)
{
	count_if_full(st_cast(sk, struct sock));
	return 0;
}

SEC("kprobe/tcp_v6_syn_recv_sock")
int BPF_KPROBE(st_kp_tcp_v6_syn_recv_sock, struct sock *sk, struct sk_buff *skb)
{
	v6_syn_recv_sock(st_cast(sk, struct sock), st_cast(skb, struct sk_buff));
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(st_tp_btf_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason, struct sock *rx_sk)
{
	listener_dropped(st_cast(rx_sk, struct sock), reason);
	return 0;
}

SEC("tp_btf/consume_skb")
int BPF_PROG(st_tp_btf_consume_skb, struct sk_buff *skb)
{
	skb_consumed(st_cast(skb, struct sk_buff));
	return 0;
}
