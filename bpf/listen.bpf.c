// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Listen overflows: connections a listener refused because its accept queue was full,
 * per network namespace and port. The kernel counts them as LINUX_MIB_LISTENOVERFLOWS
 * (ListenOverflows in /proc/net/netstat, one namespace at a time) in exactly three places,
 * each right after an sk_acceptq_is_full() check on the listener, so each program makes
 * the same check on entry:
 *  - tcp_conn_request() (net/ipv4/tcp_input.c), for a SYN; IPv4 and IPv6 share it. Under a
 *    SYN flood with syncookies off, a SYN that the full SYN queue drops first is counted
 *    here too, where the kernel counts only ListenDrops;
 *  - tcp_v4_syn_recv_sock() (net/ipv4/tcp_ipv4.c), for the handshake's last ACK;
 *  - tcp_v6_syn_recv_sock() (net/ipv6/tcp_ipv6.c), likewise, except for an IPv4 packet on
 *    a dual-stack listener, which it hands to tcp_v4_syn_recv_sock() before its check.
 * No tracepoint exists on these paths: without kprobes the hook is left out, and the
 * accept path still reports each listener's queue depth (accept.bpf.c). Kprobes only, in
 * every mode: on 6.1, attaching fentry to either syn_recv_sock function fails with
 * ENOTSUPP (measured under the test guest), and one hook's programs all use one mode so
 * that every mode counts the same overflows.
 */
#include "listen.bpf.h"

#define ETH_P_IP 0x0800

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline void count_if_full(struct sock *sk)
{
	if (st_acceptq_full(sk))
		st_listen_seen(sk, 1);
}

static __always_inline void v6_syn_recv_sock(struct sock *sk, struct sk_buff *skb)
{
	if (BPF_CORE_READ(skb, protocol) != bpf_htons(ETH_P_IP))
		count_if_full(sk);
}

/* ---- hook "listen_overflow" ---- */

SEC("kprobe/tcp_conn_request")
int BPF_KPROBE(st_kp_tcp_conn_request, void *rsk_ops, void *af_ops, struct sock *sk)
{
	count_if_full(sk);
	return 0;
}

SEC("kprobe/tcp_v4_syn_recv_sock")
int BPF_KPROBE(st_kp_tcp_v4_syn_recv_sock, struct sock *sk)
{
	count_if_full(sk);
	return 0;
}

SEC("kprobe/tcp_v6_syn_recv_sock")
int BPF_KPROBE(st_kp_tcp_v6_syn_recv_sock, struct sock *sk, struct sk_buff *skb)
{
	v6_syn_recv_sock(sk, skb);
	return 0;
}
