// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The bypass that socktrace_loopback_local_pair_bytes_total measures the opportunity for,
 * for the benchmark only (the agent never redirects traffic): a cgroup sock_ops program
 * puts every established TCP socket of the cgroup into a SOCKHASH keyed by its 4-tuple,
 * and an sk_msg program on that map hands each sendmsg() straight to the peer socket's
 * receive queue (bpf_msg_redirect_hash(), BPF_F_INGRESS): no skb, no loopback device,
 * no IP or TCP receive path.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2

struct pair_key {
	__u32 local_ip;
	__u32 remote_ip;
	__u32 local_port;   /* host byte order */
	__u32 remote_port;  /* host byte order */
};

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 1024);
	__type(key, struct pair_key);
	__type(value, __u64);
} bench_socks SEC(".maps");

SEC("sockops")
int bench_sockops(struct bpf_sock_ops *skops)
{
	struct pair_key key = {};

	if (skops->family != AF_INET)
		return 1;
	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	key.local_ip = skops->local_ip4;
	key.remote_ip = skops->remote_ip4;
	key.local_port = skops->local_port;
	/* remote_port is the network-order port shifted into the upper half. */
	key.remote_port = bpf_ntohl(skops->remote_port);
	bpf_sock_hash_update(skops, &bench_socks, &key, BPF_NOEXIST);
	return 1;
}

SEC("sk_msg")
int bench_redirect(struct sk_msg_md *msg)
{
	/* The peer's key, as the peer stored it. */
	struct pair_key key = {
		.local_ip = msg->remote_ip4,
		.remote_ip = msg->local_ip4,
		.local_port = bpf_ntohl(msg->remote_port),
		.remote_port = msg->local_port,
	};

	return bpf_msg_redirect_hash(msg, &bench_socks, &key, BPF_F_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
