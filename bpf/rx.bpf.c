// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The receive path: packets and bytes each device hands to the protocol stack,
 * counted in a per-CPU map that the agent reads at scrape time. This is the hottest
 * hook of the agent (once per packet), so it never writes a ring buffer record.
 *
 * Every receive path ends in __netif_receive_skb_core() (net/core/dev.c):
 *  - loopback and veth: loopback_xmit()/veth_xmit() -> __netif_rx() -> per-CPU
 *    backlog -> process_backlog() -> __netif_receive_skb() -> __netif_receive_skb_one_core();
 *  - a NAPI driver (e1000): napi_gro_receive() -> GRO -> gro_normal_list() ->
 *    netif_receive_skb_list_internal() -> __netif_receive_skb_list_core().
 * The netif_receive_skb tracepoint fires at the top of __netif_receive_skb_core(); the
 * fentry programs sit on its two callers, because it is itself compiled as
 * __netif_receive_skb_core.constprop.0 on 6.1 and 6.18 and cannot be attached by name.
 * No kprobe programs: a kprobe program in a softirq that interrupted another kprobe
 * program on its CPU is skipped (trace_call_bpf(), kernel/trace/bpf_trace.c), and packets
 * with it; the tracepoint program exists wherever the agent runs.
 * The driver-side entries (napi_gro_receive(), renamed gro_receive_skb() in 6.15, and
 * __netif_rx()) would count NIC packets before GRO merges them, so modes would disagree.
 */
#include "common.bpf.h"

#define IFF_LOOPBACK 0x8
/* Longer than any list the kernel builds: GRO flushes every gro_normal_batch (8) skbs
 * and a driver's netif_receive_skb_list() holds at most its NAPI budget (64). */
#define RX_LIST_MAX 128

/* LRU: devices come and go with pods; a deleted device's entry is evicted when the
 * map needs room, instead of filling it for good. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct st_rx_key);
	__type(value, struct st_rx_value);
} st_rx_devices SEC(".maps");

/*
 * loopback: IFF_LOOPBACK (only "lo" has it). nic: the device has a parent bus device
 * (PCI, virtio, USB: SET_NETDEV_DEV() in the driver's probe). virtual: everything else
 * (veth, bridge, bond, tun, vxlan are created by software and have no parent).
 */
static __always_inline __u32 rx_path(struct net_device *dev)
{
	if (BPF_CORE_READ(dev, flags) & IFF_LOOPBACK)
		return ST_RX_PATH_LOOPBACK;
	if (BPF_CORE_READ(dev, dev.parent))
		return ST_RX_PATH_NIC;
	return ST_RX_PATH_VIRTUAL;
}

static __always_inline void rx_count(struct sk_buff *skb)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	__u32 len = BPF_CORE_READ(skb, len);
	struct st_rx_key key = {};
	struct st_rx_value first = {};
	struct st_rx_value *v;

	if (!dev)
		return;
	key.ifindex = BPF_CORE_READ(dev, ifindex);
	key.netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
	v = bpf_map_lookup_elem(&st_rx_devices, &key);
	if (!v) {
		first.packets = 1;
		first.bytes = len;
		first.path = rx_path(dev);
		bpf_core_read_str(first.name, sizeof(first.name), &dev->name);
		if (!bpf_map_update_elem(&st_rx_devices, &key, &first, BPF_NOEXIST))
			return;
		/* Another CPU added the device first: count on this CPU's copy. */
		v = bpf_map_lookup_elem(&st_rx_devices, &key);
		if (!v)
			return;
	}
	/* Per-CPU copy, and the receive path runs with migration disabled: no atomics. */
	v->packets += 1;
	v->bytes += len;
}

/* The skbs of a receive list, linked through skb->list. */
static __always_inline void rx_count_list(struct list_head *head)
{
	struct list_head *node = BPF_CORE_READ(head, next);
	__u64 offset = bpf_core_field_offset(struct sk_buff, list);

	for (int i = 0; i < RX_LIST_MAX && node != head; i++) {
		rx_count((struct sk_buff *)((void *)node - offset));
		node = BPF_CORE_READ(node, next);
	}
}

/* ---- hook "rx": every skb handed to the protocol stack ---- */

SEC("fentry/__netif_receive_skb_one_core")
int BPF_PROG(st_fe_netif_receive_skb_one_core, struct sk_buff *skb)
{
	rx_count(skb);
	return 0;
}

SEC("fentry/__netif_receive_skb_list_core")
int BPF_PROG(st_fe_netif_receive_skb_list_core, struct list_head *head)
{
	rx_count_list(head);
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(st_tp_btf_netif_receive_skb, struct sk_buff *skb)
{
	rx_count(skb);
	return 0;
}
