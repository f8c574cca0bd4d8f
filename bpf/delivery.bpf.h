/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Bytes delivered to local TCP sockets, by the path they last entered the stack on, each
 * byte once; and of those, the loopback bytes between two sockets of one network namespace
 * (what a sockmap redirect could take off the stack). bpf/delivery.bpf.c counts at each
 * tcp_data_ready(); the state program (bpf/state.bpf.c) learns who each client is, and the
 * receive program (bpf/rx.bpf.c) stamps the skbs the latency is sampled on.
 *
 * Where "delivered" is decided: TCP moves tp->rcv_nxt forward, and with it
 * tp->bytes_received, only when bytes become in order in the receive queue
 * (tcp_rcv_nxt_update() in net/ipv4/tcp_input.c, from tcp_queue_rcv() on the fast path,
 * tcp_data_queue() and the out-of-order drain tcp_ofo_queue()). Every such step ends in
 * tcp_data_ready(). So the program counts the rise of bytes_received since its last run on
 * that socket, kept in the socket's own storage (bpf_sk_storage): a retransmitted or
 * duplicate segment does not move rcv_nxt and counts nothing, an out-of-order segment
 * counts when the hole before it fills, and GRO or tcp_try_coalesce() merging skbs changes
 * nothing because no skb is counted. bytes_received also counts the FIN's sequence number:
 * it is taken off once, when the receive queue's tail carries FIN.
 *
 * The path is that of the receive queue's tail, the skb just queued or merged into:
 * skb->skb_iif is the device __netif_receive_skb_core() last handed it to the stack on,
 * classified as bpf/rx.bpf.c classifies devices, found by index in the socket's namespace.
 * A packet that came in on a NIC and crossed a bridge and a veth into a pod's namespace was
 * last received on the veth: it counts once, as virtual.
 *
 * Local pairs are counted at the connecting end, which knows its process: what it
 * received in order, and what it sent (bytes_sent less bytes_retrans: each byte once),
 * at each of its data_ready runs and at each of its state changes after ESTABLISHED, so
 * what it sends is counted when it next receives, or at the latest when it closes.
 * Only a connection routed through a loopback device is a pair: traffic on a namespace's
 * lo comes from that namespace.
 */
#ifndef SOCKTRACE_DELIVERY_BPF_H
#define SOCKTRACE_DELIVERY_BPF_H

#include "common.bpf.h"
#include <bpf/bpf_endian.h>

#define DL_IPPROTO_TCP 6
#define DL_SOCK_STREAM 1
#define DL_IFF_LOOPBACK 0x8
#define DL_TCPHDR_FIN 0x01

#define DL_ROLE_ACTIVE 1   /* connect()ed, to an address that can be this host's */

/* Per socket: what has been counted so far, and for a client, who it is. */
struct dl_sock {
	__u64 counted_bytes;  /* bytes_received already counted */
	__u64 counted_sent;   /* client: bytes_sent - bytes_retrans already counted as its pair's */
	__u32 counted_segs;   /* data_segs_in already counted */
	__u16 listener_port;  /* client: the port it connected to */
	__u8 role;            /* DL_ROLE_* */
	__u8 fin_counted;
	__u8 loopback;        /* client: routed through a loopback device, so a local pair */
	__u8 _pad[7];
	char comm[ST_COMM_LEN]; /* client: its process */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct dl_sock);
} st_dl_socks SEC(".maps") __weak;

/* LRU: namespaces come and go with pods. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct st_delivery_key);
	__type(value, struct st_delivery_value);
} st_delivery SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct st_local_pair_key);
	__type(value, __u64);
} st_local_pairs SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct st_delivery_key);
	__type(value, struct st_delivery_latency);
} st_delivery_latency SEC(".maps") __weak;

/*
 * Delivery latency, sampled: a stamp per skb would be a map write per packet. Every
 * DL_SAMPLE_EVERY-th skb a CPU hands to the stack is stamped in that CPU's one slot
 * (skb->tstamp is no help: loopback and namespace crossings clear it, and it changes
 * clock). When a socket's receive queue tail is that skb, on that CPU, the time since is
 * one sample: softirq handles an skb from hand-off to queueing on one CPU, and a socket
 * owned by its reader queues it from the backlog at release_sock(), usually on the same
 * CPU, so the wait there is included. An skb merged into the previous one
 * (tcp_try_coalesce()), or not TCP data, leaves the slot to the next stamp. skb->head
 * next to the pointer keeps a recycled sk_buff from matching an old stamp.
 */
#define DL_SAMPLE_EVERY 64
#define DL_SAMPLE_MAX_NS (60ULL * 1000000000ULL)

struct dl_stamp {
	__u64 skb;
	__u64 head;
	__u64 ns;
	__u64 seen;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dl_stamp);
} st_dl_stamps SEC(".maps") __weak;

static __always_inline int dl_enabled(void)
{
	return st_cfg.flags & ST_CFG_DELIVERY;
}

/*
 * loopback: IFF_LOOPBACK (only "lo" has it). nic: the device has a parent bus device
 * (PCI, virtio, USB: SET_NETDEV_DEV() in the driver's probe). virtual: everything else
 * (veth, bridge, bond, tun, vxlan are created by software and have no parent).
 */
static __always_inline __u32 st_rx_path(struct net_device *dev)
{
	if (!dev)
		return 0;
	if (ST_READ(dev, flags) & DL_IFF_LOOPBACK)
		return ST_RX_PATH_LOOPBACK;
	if (ST_READ(dev, dev.parent))
		return ST_RX_PATH_NIC;
	return ST_RX_PATH_VIRTUAL;
}

/*
 * The device skb_iif names, in the socket's namespace: TCP has reused skb->dev by the time
 * the skb sits in the receive queue (it reads NULL there), so the index is all that is
 * left. ifindex 1 is the loopback device of every namespace (LOOPBACK_IFINDEX,
 * include/net/net_namespace.h); any other is looked up in the namespace's ifindex hash,
 * dev_index_head (NETDEV_HASHBITS 8, net/core/dev.c: dev_index_hash()).
 */
#define DL_LOOPBACK_IFINDEX 1
#define DL_NETDEV_HASHENTRIES 256
#define DL_HASH_CHAIN_MAX 16

static __always_inline __u32 dl_path_of_index(const struct sock *sk, int ifindex)
{
	struct hlist_head *heads = ST_READ(sk, __sk_common.skc_net.net, dev_index_head);
	__u64 offset = bpf_core_field_offset(struct net_device, index_hlist);
	__u64 head = (__u64)heads + (ifindex & (DL_NETDEV_HASHENTRIES - 1)) * sizeof(struct hlist_head);
	struct hlist_node *node;

	if (ifindex == DL_LOOPBACK_IFINDEX)
		return ST_RX_PATH_LOOPBACK;
	if (ifindex <= 0 || !heads)
		return 0;
	node = ST_READ(st_cast(head, struct hlist_head), first);
	for (int i = 0; i < DL_HASH_CHAIN_MAX && node; i++) {
		struct net_device *dev = st_cast((__u64)node - offset, struct net_device);

		if (ST_READ(dev, ifindex) == ifindex)
			return st_rx_path(dev);
		node = ST_READ(st_cast(node, struct hlist_node), next);
	}
	return 0;
}

static __always_inline int dl_is_tcp(const struct sock *sk)
{
	__u16 family = ST_READ(sk, __sk_common.skc_family);

	return (family == ST_AF_INET || family == ST_AF_INET6) &&
	       ST_READ(sk, sk_protocol) == DL_IPPROTO_TCP && ST_READ(sk, sk_type) == DL_SOCK_STREAM;
}

/* The agent's latency bounds (SockTraceMeter.LatencyBuckets), in ns: index of the first
 * bound not below ns, ST_LATENCY_BOUNDS above them all. */
static __always_inline __u32 dl_bucket(__u64 ns)
{
	static const __u64 us = 1000;
	__u64 bounds[ST_LATENCY_BOUNDS] = {
		1 * us, 2500, 5 * us, 10 * us, 25 * us, 50 * us,
		100 * us, 250 * us, 500 * us, 1000 * us, 2500 * us, 5000 * us,
		10000 * us, 25000 * us, 50000 * us, 100000 * us, 250000 * us, 500000 * us,
		1000000 * us, 2500000 * us, 5000000 * us, 10000000 * us, 30000000 * us, 60000000 * us,
	};

	for (__u32 i = 0; i < ST_LATENCY_BOUNDS; i++)
		if (ns <= bounds[i])
			return i;
	return ST_LATENCY_BOUNDS;
}

/*
 * Every skb handed to the stack: one in DL_SAMPLE_EVERY is this CPU's stamp. seen is the
 * count the rx hook just made of the skb's device on this CPU, so that the others leave
 * before any lookup; 0 when it counted none (devices not counted), and then the stamp's
 * own counter decides.
 */
static __always_inline void dl_stamp(struct sk_buff *skb, __u64 seen)
{
	__u32 zero = 0;
	struct dl_stamp *st;

	if (seen && seen % DL_SAMPLE_EVERY != 1)
		return;
	st = bpf_map_lookup_elem(&st_dl_stamps, &zero);
	if (!st || (!seen && st->seen++ % DL_SAMPLE_EVERY))
		return;
	st->skb = (__u64)skb;
	st->head = (__u64)ST_READ(skb, head);
	st->ns = bpf_ktime_get_ns();
}

/* If tail is this CPU's stamped skb: one latency sample for (netns, path). */
static __always_inline void dl_sample(struct sk_buff *tail, struct st_delivery_key *key)
{
	__u32 zero = 0;
	struct dl_stamp *st = bpf_map_lookup_elem(&st_dl_stamps, &zero);
	struct st_delivery_latency *lat;
	__u64 ns;

	if (!st || st->skb != (__u64)tail || st->head != (__u64)ST_READ(tail, head))
		return;
	ns = bpf_ktime_get_ns() - st->ns;
	st->skb = 0;
	if (ns > DL_SAMPLE_MAX_NS)
		return;
	lat = bpf_map_lookup_elem(&st_delivery_latency, key);
	if (!lat) {
		struct st_delivery_latency first = {};

		bpf_map_update_elem(&st_delivery_latency, key, &first, BPF_NOEXIST);
		lat = bpf_map_lookup_elem(&st_delivery_latency, key);
		if (!lat)
			return;
	}
	__u32 b = dl_bucket(ns);

	if (b <= ST_LATENCY_BOUNDS)
		lat->buckets[b] += 1;
	lat->sum_ns += ns;
}

/* Whether a connection between these addresses can run over a loopback device: to
 * 127.0.0.0/8 or ::1, or to the address it is from (an address of this host is routed
 * through lo, and the source chosen for it is itself). Others never make a local pair,
 * and their connect() costs no storage. */
static __always_inline int dl_maybe_loopback(__u16 family, const __u8 local[16], const __u8 remote[16])
{
	int same = 1;

	if (family == ST_AF_INET && remote[0] == 127)
		return 1;
	for (int i = 0; i < 16; i++)
		if (local[i] != remote[i])
			same = 0;
	if (same)
		return 1;
	if (family != ST_AF_INET6 || remote[15] != 1)
		return 0;
	for (int i = 0; i < 15; i++)
		if (remote[i])
			return 0;
	return 1;
}

static __always_inline void dl_add(void *map, void *key, void *first, __u64 bytes, __u64 segs, int pair)
{
	__u64 *v = bpf_map_lookup_elem(map, key);

	if (!v) {
		if (!bpf_map_update_elem(map, key, first, BPF_NOEXIST))
			return;
		/* Another CPU added the key first: count on this CPU's copy. */
		v = bpf_map_lookup_elem(map, key);
		if (!v)
			return;
	}
	/* Per-CPU copies, and the socket is locked: no atomics. */
	if (pair) {
		*v += bytes;
	} else {
		struct st_delivery_value *d = (void *)v;

		d->bytes += bytes;
		d->segments += segs;
	}
}

/* A client's pair: received bytes (already counted by path) and what it sent since its
 * last count, under the listener's port and its process. */
static __always_inline void dl_count_pair(struct sock *ro, struct dl_sock *s, __u64 received)
{
	struct tcp_sock *tp = st_cast(ro, struct tcp_sock);
	__u64 sent = ST_READ(tp, bytes_sent) - ST_READ(tp, bytes_retrans);
	__u64 bytes = received + (sent - s->counted_sent);
	struct st_local_pair_key pair = { .netns = st_netns_of(ro), .port = s->listener_port };

	s->counted_sent = sent;
	if (!bytes)
		return;
	__builtin_memcpy(pair.comm, s->comm, ST_COMM_LEN);
	dl_add(&st_local_pairs, &pair, &bytes, bytes, 0, 1);
}

/*
 * The state program's part, once per connection. A client is named in connect()
 * (CLOSE -> SYN_SENT runs in tcp_v4_connect()/tcp_v6_connect(), in the caller's context,
 * with both addresses set), and at ESTABLISHED its route says whether it is a pair; after
 * that, leaving ESTABLISHED and reaching CLOSE count what it sent since the last count.
 */
/* sk for the socket storage, ro (its untrusted cast) for the reads. */
static __always_inline void dl_state(struct sock *sk, struct sock *ro, int oldstate, int newstate)
{
	struct dl_sock *s;

	if (!dl_enabled())
		return;
	if (newstate == TCP_SYN_SENT) {
		__u8 local[16] = {}, remote[16] = {};
		__u16 family;

		if (!dl_is_tcp(ro))
			return;
		family = ST_READ(ro, __sk_common.skc_family);
		st_local_addr(ro, family, local);
		st_peer_addr(ro, family, remote);
		if (!dl_maybe_loopback(family, local, remote))
			return;
		s = bpf_sk_storage_get(&st_dl_socks, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
		if (!s)
			return;
		s->role = DL_ROLE_ACTIVE;
		s->listener_port = bpf_ntohs(ST_READ(ro, __sk_common.skc_dport));
		st_process_comm(s->comm);
		return;
	}
	/*
	 * Counted where a client stops sending (leaving ESTABLISHED: its FIN, or the peer's)
	 * and where it ends (every TCP socket's last change is to CLOSE: tcp_done(), also
	 * from tcp_time_wait(); inet_csk_destroy_sock() warns on any other state): data queued
	 * before the FIN can still go out in FIN_WAIT1 (tcp_send_fin() rides it on the last
	 * unsent segment), and a client in CLOSE_WAIT can still send, so both are in the count at
	 * CLOSE. The other changes of closing (FIN_WAIT1 to FIN_WAIT2, CLOSE_WAIT to LAST_ACK)
	 * leave here without a lookup.
	 */
	if (oldstate != TCP_SYN_SENT && oldstate != TCP_ESTABLISHED && newstate != TCP_CLOSE)
		return;
	/* A socket without storage (no client of a loopback-capable address) costs this lookup. */
	s = bpf_sk_storage_get(&st_dl_socks, sk, NULL, 0);
	if (!s || s->role != DL_ROLE_ACTIVE)
		return;
	if (oldstate == TCP_SYN_SENT) {
		struct dst_entry *dst = st_cast(ST_READ(ro, sk_dst_cache), struct dst_entry);

		s->loopback = newstate == TCP_ESTABLISHED && dst && st_rx_path(ST_READ(dst, dev)) == ST_RX_PATH_LOOPBACK;
		return;
	}
	if (s->loopback)
		dl_count_pair(ro, s, 0);
}

#endif
