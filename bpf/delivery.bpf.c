// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Bytes delivered to local TCP sockets, by the path they last entered the stack on, each
 * byte once; and of those, the loopback bytes between two sockets of this host (what a
 * sockmap redirect could take off the stack).
 *
 * Where "delivered" is decided: TCP moves tp->rcv_nxt forward, and with it
 * tp->bytes_received, only when bytes become in order in the receive queue
 * (tcp_rcv_nxt_update() in net/ipv4/tcp_input.c, from tcp_queue_rcv() on the fast path,
 * tcp_data_queue() and the out-of-order drain tcp_ofo_queue()). Every such step ends in
 * tcp_data_ready(). So the program runs once per tcp_data_ready() and counts the rise of
 * bytes_received since its last run on that socket, kept in the socket's own storage
 * (bpf_sk_storage): a retransmitted or duplicate segment does not move rcv_nxt and
 * counts nothing, an out-of-order segment counts when the hole before it fills, and GRO
 * or tcp_try_coalesce() merging skbs changes nothing because no skb is counted.
 * bytes_received also counts the FIN's sequence number: it is taken off once, when the
 * receive queue's tail carries FIN (tcp_try_coalesce() ORs the flags into the tail).
 *
 * The path is that of the receive queue's tail, the skb just queued or merged into:
 * skb->skb_iif is the device __netif_receive_skb_core() last handed it to the stack on,
 * classified as bpf/rx.bpf.c classifies devices, found by index in the socket's namespace. A packet that came in on a NIC and
 * crossed a bridge and a veth into a pod's namespace was last received on the veth:
 * it counts once, as virtual.
 *
 * Entry points: tcp_data_ready() itself with fentry; with tracepoints, sock:sk_data_ready,
 * which sock_def_readable() fires when tcp_data_ready() finds enough bytes to wake a
 * reader (always, unless SO_RCVLOWAT is raised; then the next wake-up counts the bytes
 * since). No kprobe programs, for the reason bpf/rx.bpf.c gives: most runs are in softirq.
 */
#include "common.bpf.h"
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define SOCK_STREAM 1
#define IFF_LOOPBACK 0x8
#define TCPHDR_FIN 0x01
#define RCV_SHUTDOWN 1

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_LISTEN 10

#define DL_ROLE_ACTIVE 1   /* connect()ed */
#define DL_ROLE_PASSIVE 2  /* accepted from a listener */

/* Per socket: what has been counted so far, and who the socket belongs to. */
struct dl_sock {
	__u64 counted_bytes;  /* bytes_received already counted */
	__u32 counted_segs;   /* data_segs_in already counted */
	__u16 listener_port;  /* the listener's port, whichever end this is; 0 unknown */
	__u8 role;            /* DL_ROLE_* */
	__u8 fin_counted;
	__u8 local_peer;      /* the peer's connect() was seen in this network namespace */
	__u8 _pad[7];
	char comm[ST_COMM_LEN]; /* the connecting process: the client of the pair */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct dl_sock);
} st_dl_socks SEC(".maps");

/* LRU: namespaces come and go with pods. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct st_delivery_key);
	__type(value, struct st_delivery_value);
} st_delivery SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct st_local_pair_key);
	__type(value, __u64);
} st_local_pairs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct st_delivery_key);
	__type(value, struct st_delivery_latency);
} st_delivery_latency SEC(".maps");

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
} st_dl_stamps SEC(".maps");

/* A connection's client end as the listener's end sees it, from the client's
 * SYN_SENT -> ESTABLISHED to the accepted socket's SYN_RECV -> ESTABLISHED, which comes
 * after it (the client acknowledges the SYN-ACK only once it is established). */
struct dl_tuple {
	__u32 netns;
	__u16 family;
	__u16 client_port;
	__u16 listener_port;
	__u16 _pad;
	__u8 client_addr[16];
	__u8 listener_addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct dl_tuple);
	__type(value, char[ST_COMM_LEN]);
} st_dl_clients SEC(".maps");

static __always_inline __u32 dl_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline __u32 dl_path(struct net_device *dev)
{
	if (!dev)
		return 0;
	if (BPF_CORE_READ(dev, flags) & IFF_LOOPBACK)
		return ST_RX_PATH_LOOPBACK;
	if (BPF_CORE_READ(dev, dev.parent))
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
#define LOOPBACK_IFINDEX 1
#define NETDEV_HASHENTRIES 256
#define DL_HASH_CHAIN_MAX 16

static __always_inline __u32 dl_path_of_index(const struct sock *sk, int ifindex)
{
	struct hlist_head *heads = BPF_CORE_READ(sk, __sk_common.skc_net.net, dev_index_head);
	__u64 offset = bpf_core_field_offset(struct net_device, index_hlist);
	struct hlist_node *node = NULL;

	if (ifindex == LOOPBACK_IFINDEX)
		return ST_RX_PATH_LOOPBACK;
	if (ifindex <= 0 || !heads)
		return 0;
	bpf_probe_read_kernel(&node, sizeof(node), &heads[ifindex & (NETDEV_HASHENTRIES - 1)].first);
	for (int i = 0; i < DL_HASH_CHAIN_MAX && node; i++) {
		struct net_device *dev = (void *)node - offset;

		if (BPF_CORE_READ(dev, ifindex) == ifindex)
			return dl_path(dev);
		node = BPF_CORE_READ(node, next);
	}
	return 0;
}

static __always_inline int dl_is_tcp(const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	return (family == AF_INET || family == AF_INET6) &&
	       BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP &&
	       BPF_CORE_READ(sk, sk_type) == SOCK_STREAM;
}

/* Local and remote address of sk, 16 bytes each (IPv4 in the first 4). */
static __always_inline void dl_addrs(const struct sock *sk, __u16 family, __u8 local[16], __u8 remote[16])
{
	if (family == AF_INET) {
		BPF_CORE_READ_INTO((__u32 *)local, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)remote, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO((__u8 (*)[16])local, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO((__u8 (*)[16])remote, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
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

static __always_inline void dl_stamp(struct sk_buff *skb)
{
	__u32 zero = 0;
	struct dl_stamp *st = bpf_map_lookup_elem(&st_dl_stamps, &zero);

	if (!st || st->seen++ % DL_SAMPLE_EVERY)
		return;
	st->skb = (__u64)skb;
	st->head = (__u64)BPF_CORE_READ(skb, head);
	st->ns = bpf_ktime_get_ns();
}

static __always_inline void dl_stamp_list(struct list_head *head)
{
	struct list_head *node = BPF_CORE_READ(head, next);
	__u64 offset = bpf_core_field_offset(struct sk_buff, list);

	/* As bpf/rx.bpf.c: longer than any list the kernel builds. */
	for (int i = 0; i < 128 && node != head; i++) {
		dl_stamp((struct sk_buff *)((void *)node - offset));
		node = BPF_CORE_READ(node, next);
	}
}

/* If tail is this CPU's stamped skb: one latency sample for (netns, path). */
static __always_inline void dl_sample(struct sk_buff *tail, struct st_delivery_key *key)
{
	__u32 zero = 0;
	struct dl_stamp *st = bpf_map_lookup_elem(&st_dl_stamps, &zero);
	struct st_delivery_latency *lat;
	__u64 ns;

	if (!st || st->skb != (__u64)tail || st->head != (__u64)BPF_CORE_READ(tail, head))
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
 * and their connect() costs no map write. */
static __always_inline int dl_maybe_loopback(__u16 family, const __u8 local[16], const __u8 remote[16])
{
	int same = 1;

	if (family == AF_INET && remote[0] == 127)
		return 1;
	for (int i = 0; i < 16; i++)
		if (local[i] != remote[i])
			same = 0;
	if (same)
		return 1;
	if (family != AF_INET6 || remote[15] != 1)
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

static __always_inline void delivery_count(struct sock *sk)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	struct sk_buff *tail;
	struct dl_sock *s;
	__u64 received, bytes;
	__u32 segs_in, segs, path = 0;

	/* A listener's data_ready announces a connection, not bytes: no storage for it. */
	if (!dl_is_tcp(sk) || BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_LISTEN)
		return;
	s = bpf_sk_storage_get(&st_dl_socks, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!s)
		return;
	received = BPF_CORE_READ(tp, bytes_received);
	segs_in = BPF_CORE_READ(tp, data_segs_in);
	bytes = received - s->counted_bytes;
	segs = segs_in - s->counted_segs;
	if (!bytes && !segs)
		return;

	tail = BPF_CORE_READ(sk, sk_receive_queue.prev);
	if (tail && (void *)tail != (void *)&sk->sk_receive_queue) {
		__u8 flags = 0;
		void *cb = (void *)tail + bpf_core_field_offset(struct sk_buff, cb);

		path = dl_path_of_index(sk, BPF_CORE_READ(tail, skb_iif));
		/* The low byte of tcp_flags (u8 before AccECN made it u16; little-endian). */
		bpf_probe_read_kernel(&flags, 1, cb + bpf_core_field_offset(struct tcp_skb_cb, tcp_flags));
		if ((flags & TCPHDR_FIN) && !s->fin_counted && bytes) {
			s->fin_counted = 1;
			bytes -= 1;
		}
	}
	s->counted_bytes = received;
	s->counted_segs = segs_in;

	struct st_delivery_key key = { .netns = dl_netns(sk), .path = path };
	struct st_delivery_value first = { .bytes = bytes, .segments = segs };

	dl_add(&st_delivery, &key, &first, bytes, segs, 0);
	if (tail && bytes)
		dl_sample(tail, &key);

	/* Loopback bytes between two sockets of this namespace's stack: the client end
	 * always (a segment it received on lo came from a socket of its own namespace), the
	 * listener's end when the client's connect() was seen. */
	if (path != ST_RX_PATH_LOOPBACK || !bytes || !s->listener_port)
		return;
	if (s->role == DL_ROLE_PASSIVE && !s->local_peer)
		return;
	struct st_local_pair_key pair = { .netns = key.netns, .port = s->listener_port };

	__builtin_memcpy(pair.comm, s->comm, ST_COMM_LEN);
	dl_add(&st_local_pairs, &pair, &bytes, bytes, 0, 1);
}

/*
 * Who each end is, once per connection: the client's process name while it is in
 * connect() (CLOSE -> SYN_SENT runs in tcp_v4_connect()/tcp_v6_connect(), in the caller's
 * context; the port is not chosen yet), its address once established; the accepted end
 * finds the client by address when it is established. Only the client end has a process
 * in context: the accepted end's transitions run in softirq.
 */
static __always_inline void delivery_state(const struct sock *sk, int oldstate, int newstate)
{
	struct dl_tuple t = {};
	struct dl_sock *s;
	__u8 local[16] = {}, remote[16] = {};
	char *comm;

	/* Four of a connection's six transitions are neither: they leave before reading the sock. */
	if (newstate != TCP_SYN_SENT && newstate != TCP_ESTABLISHED)
		return;
	if (!dl_is_tcp(sk))
		return;
	if (newstate == TCP_SYN_SENT) {
		s = bpf_sk_storage_get(&st_dl_socks, (void *)sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
		if (!s)
			return;
		s->role = DL_ROLE_ACTIVE;
		st_process_comm(s->comm);
		return;
	}
	if (newstate != TCP_ESTABLISHED || (oldstate != TCP_SYN_SENT && oldstate != TCP_SYN_RECV))
		return;

	t.netns = dl_netns(sk);
	t.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	dl_addrs(sk, t.family, local, remote);
	if (oldstate == TCP_SYN_SENT) {
		s = bpf_sk_storage_get(&st_dl_socks, (void *)sk, NULL, 0);
		if (!s)
			return;
		s->listener_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		if (!dl_maybe_loopback(t.family, local, remote))
			return;
		t.client_port = BPF_CORE_READ(sk, __sk_common.skc_num);
		t.listener_port = s->listener_port;
		__builtin_memcpy(t.client_addr, local, 16);
		__builtin_memcpy(t.listener_addr, remote, 16);
		bpf_map_update_elem(&st_dl_clients, &t, s->comm, BPF_ANY);
		return;
	}
	s = bpf_sk_storage_get(&st_dl_socks, (void *)sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!s)
		return;
	s->role = DL_ROLE_PASSIVE;
	s->listener_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	t.client_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	t.listener_port = s->listener_port;
	__builtin_memcpy(t.client_addr, remote, 16);
	__builtin_memcpy(t.listener_addr, local, 16);
	comm = bpf_map_lookup_elem(&st_dl_clients, &t);
	if (!comm)
		return;
	s->local_peer = 1;
	__builtin_memcpy(s->comm, comm, ST_COMM_LEN);
	bpf_map_delete_elem(&st_dl_clients, &t);
}

/* ---- hook "delivery": bytes queued in order on a TCP socket ---- */

SEC("fentry/tcp_data_ready")
int BPF_PROG(st_fe_tcp_data_ready, struct sock *sk)
{
	delivery_count(sk);
	return 0;
}

SEC("tp_btf/sk_data_ready")
int BPF_PROG(st_tp_btf_sk_data_ready, const struct sock *sk)
{
	delivery_count((struct sock *)sk);
	return 0;
}

/* ---- hook "delivery_latency": every skb handed to the stack, one in DL_SAMPLE_EVERY
 * stamped; the functions are bpf/rx.bpf.c's, for the reasons it gives ---- */

SEC("fentry/__netif_receive_skb_one_core")
int BPF_PROG(st_fe_dl_netif_receive_skb_one_core, struct sk_buff *skb)
{
	dl_stamp(skb);
	return 0;
}

SEC("fentry/__netif_receive_skb_list_core")
int BPF_PROG(st_fe_dl_netif_receive_skb_list_core, struct list_head *head)
{
	dl_stamp_list(head);
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(st_tp_btf_dl_netif_receive_skb, struct sk_buff *skb)
{
	dl_stamp(skb);
	return 0;
}

/* The old state is still in sk_state on entry to tcp_set_state() (net/ipv4/tcp.c). */
SEC("fentry/tcp_set_state")
int BPF_PROG(st_fe_dl_tcp_set_state, struct sock *sk, int state)
{
	delivery_state(sk, BPF_CORE_READ(sk, __sk_common.skc_state), state);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(st_tp_btf_dl_inet_sock_set_state, const struct sock *sk, int oldstate, int newstate)
{
	delivery_state(sk, oldstate, newstate);
	return 0;
}
