// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Bytes delivered to local TCP sockets (bpf/delivery.bpf.h says how they are counted).
 *
 * Entry points: tcp_data_ready() itself with fentry; with tracepoints, sock:sk_data_ready,
 * which sock_def_readable() fires when tcp_data_ready() finds enough bytes to wake a
 * reader (always, unless SO_RCVLOWAT is raised; then the next wake-up counts the bytes
 * since). No kprobe programs: most runs are in softirq, and a kprobe program in a softirq
 * that interrupted another kprobe program on its CPU is skipped (trace_call_bpf(),
 * kernel/trace/bpf_trace.c).
 */
#include "delivery.bpf.h"


static __always_inline void delivery_count(struct sock *sk)
{
	struct tcp_sock *tp = st_cast(sk, struct tcp_sock);
	/* sk for the socket storage, ro for the reads (st_current(), common.bpf.h, says why). */
	struct sock *ro = st_cast(sk, struct sock);
	struct sk_buff *tail;
	struct dl_sock *s;
	__u64 received, bytes;
	__u32 segs_in, segs, path = 0;

	/* A listener's data_ready announces a connection, not bytes: no storage for it. */
	if (ST_READ(ro, __sk_common.skc_state) == TCP_LISTEN || !dl_is_tcp(ro))
		return;
	s = bpf_sk_storage_get(&st_dl_socks, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!s)
		return;
	received = ST_READ(tp, bytes_received);
	segs_in = ST_READ(tp, data_segs_in);
	bytes = received - s->counted_bytes;
	segs = segs_in - s->counted_segs;
	if (!bytes && !segs)
		return;

	tail = ST_READ(ro, sk_receive_queue.prev);
	if (tail && (__u64)tail != (__u64)sk + bpf_core_field_offset(struct sock, sk_receive_queue)) {
		struct tcp_skb_cb *cb = st_cast((__u64)tail + bpf_core_field_offset(struct sk_buff, cb), struct tcp_skb_cb);

		tail = st_cast(tail, struct sk_buff);
		path = dl_path_of_index(ro, ST_READ(tail, skb_iif));
		/* The low byte of tcp_flags (u8 before AccECN made it u16; libbpf sizes the load). */
		if ((ST_READ(cb, tcp_flags) & DL_TCPHDR_FIN) && !s->fin_counted && bytes) {
			s->fin_counted = 1;
			bytes -= 1;
		}
	} else {
		tail = NULL;
	}
	s->counted_bytes = received;
	s->counted_segs = segs_in;

	struct st_delivery_key key = { .netns = st_netns_of(ro), .path = path };
	struct st_delivery_value first = { .bytes = bytes, .segments = segs };

	dl_add(&st_delivery, &key, &first, bytes, segs, 0);
	if (tail && bytes)
		dl_sample(tail, &key);
	if (s->role == DL_ROLE_ACTIVE && s->loopback)
		dl_count_pair(ro, s, bytes);
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
