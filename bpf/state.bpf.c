// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Every TCP state change, in one program per attach point, for every feature that needs
 * one: a connection's child entering its listener's accept queue and a client completing
 * its connect (records the agent joins to the accept records: the queue wait, and whether
 * the peer is a socket of this host), listeners starting and closing (bpf/listen.bpf.h),
 * and the delivery hook's clients (bpf/delivery.bpf.h). It runs for every state change of
 * every TCP socket on the node, six per connection: the ones no feature uses leave at the
 * first compare, before reading the sock.
 */
#include "common.bpf.h"
#include "delivery.bpf.h"
#include "listen.bpf.h"
#include <bpf/bpf_endian.h>


/*
 * A passive-open child is created in SYN_RECV and moves to ESTABLISHED when the
 * handshake's final ACK is processed (tcp_rcv_state_process(), net/ipv4/tcp_input.c), under
 * bh_lock_sock() of the child, which the accepting thread's lock_sock() in inet_accept()
 * waits for: this record is reserved before the accept record of the same child.
 */
static __always_inline void child_established(struct sock *sk)
{
	struct st_established_record *rec = st_reserve(sizeof(*rec));

	if (!rec)
		return;
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->hdr.type = ST_RECORD_ESTABLISHED;
	rec->hdr.size = sizeof(*rec);
	rec->sk = (__u64)sk;
	rec->ns = bpf_ktime_get_ns();
	rec->family = ST_READ(sk, __sk_common.skc_family);
	rec->peer_port = bpf_ntohs(ST_READ(sk, __sk_common.skc_dport));
	st_peer_addr(sk, rec->family, rec->peer_addr);
	st_submit(rec);
}

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104: such a peer is "loopback" whatever else. */
static __always_inline int loopback_address(__u16 family, const __u8 a[16])
{
	if (family == ST_AF_INET)
		return a[0] == 127;
	__u64 hi = *(const __u64 *)a, lo = *(const __u64 *)&a[8];

	return !hi && (lo == bpf_cpu_to_be64(1) || (lo >> 32 == bpf_htonl(0xffff) && a[12] == 127));
}

/*
 * An active open reaches ESTABLISHED when the SYN-ACK arrives (tcp_finish_connect(),
 * net/ipv4/tcp_input.c), before it sends the ACK that lets the other end accept, so the
 * record of a client on this host always comes before its connection's accept record.
 * Not at SYN_SENT: tcp_v4_connect() sets that state before inet_hash_connect() picks the
 * source port. Not for a peer the agent calls loopback anyway, nor for a connection routed
 * out of a NIC, which is to another host.
 */
static __always_inline void client_established(struct sock *sk)
{
	struct dst_entry *dst = st_cast(ST_READ(sk, sk_dst_cache), struct dst_entry);
	__u16 family = ST_READ(sk, __sk_common.skc_family);
	struct st_client_record *rec;
	__u8 remote[16] = {};

	if (family != ST_AF_INET && family != ST_AF_INET6)
		return;
	st_peer_addr(sk, family, remote);
	if (loopback_address(family, remote) || (dst && st_rx_path(ST_READ(dst, dev)) == ST_RX_PATH_NIC))
		return;
	rec = st_reserve(sizeof(*rec));
	if (!rec)
		return;
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->hdr.type = ST_RECORD_CLIENT;
	rec->hdr.size = sizeof(*rec);
	rec->family = family;
	rec->port = ST_READ(sk, __sk_common.skc_num);
	st_local_addr(sk, family, rec->addr);
	st_submit(rec);
}

/* sk is the program's argument, trusted, which socket storage needs; the rest reads through
 * an untrusted cast of it (st_current(), common.bpf.h, says why). */
static __always_inline void state_change(struct sock *sk, int oldstate, int newstate)
{
	struct sock *ro = st_cast(sk, struct sock);

	if (newstate == TCP_ESTABLISHED) {
		if (oldstate == TCP_SYN_RECV)
			child_established(ro);
		else if (oldstate == TCP_SYN_SENT)
			client_established(ro);
	} else if (newstate == TCP_LISTEN) {
		st_listen_started(ro);
	} else if (oldstate == TCP_LISTEN && newstate == TCP_CLOSE) {
		st_listen_forget(ro);
	}
	dl_state(sk, ro, oldstate, newstate);
}

/* ---- hook "sock_established": every TCP state change ---- */

/* tcp_set_state() is where every TCP state change happens (net/ipv4/tcp.c); the old
 * state is still in sk_state on entry. */
SEC("fentry/tcp_set_state")
int BPF_PROG(st_fe_tcp_set_state, struct sock *sk, int state)
{
	state_change(sk, ST_READ(sk, __sk_common.skc_state), state);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(st_tp_btf_inet_sock_set_state, const struct sock *sk, int oldstate, int newstate)
{
	state_change((struct sock *)sk, oldstate, newstate);
	return 0;
}
