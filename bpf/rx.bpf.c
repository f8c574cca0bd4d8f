// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The receive path: packets and bytes each device hands to the protocol stack, counted
 * per CPU for the agent to read at scrape time; and, for the delivery hook, the stamps its
 * latency is sampled on (bpf/delivery.bpf.h). This is the hottest hook of the agent (once
 * per packet), so it never writes a ring buffer record, and a device is counted with two
 * stores in a per-CPU array slot (st_rx_cache; the verifier inlines the lookup), not in a
 * hash map, once its slot is its own.
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
#include "delivery.bpf.h"

/* Longer than any list the kernel builds: GRO flushes every gro_normal_batch (8) skbs
 * and a driver's netif_receive_skb_list() holds at most its NAPI budget (64). */
#define RX_LIST_MAX 128


struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_RX_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct st_rx_slot);
} st_rx_cache SEC(".maps");

/* The devices whose cache slot another holds. LRU: devices come and go with pods; a
 * deleted device's entry is evicted when the map needs room. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct st_rx_key);
	__type(value, struct st_rx_count);
} st_rx_devices SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct st_rx_key);
	__type(value, struct st_rx_name);
} st_rx_names SEC(".maps");

/* The slot a device's key hashes to (the agent does not need to know it). */
static __always_inline __u32 st_rx_slot_of(const struct st_rx_key *key)
{
	return (key->ifindex * 2654435761u ^ key->netns) % ST_RX_CACHE_SLOTS;
}

/* First sight of a device on a CPU: its name and path, unless another CPU wrote them. */
static __always_inline void rx_name(const struct st_rx_key *key, struct net_device *dev)
{
	struct st_rx_name name = {};

	if (bpf_map_lookup_elem(&st_rx_names, key))
		return;
	name.path = st_rx_path(dev);
	ST_READ_INTO(&name.name, dev, name);
	bpf_map_update_elem(&st_rx_names, key, &name, BPF_NOEXIST);
}

/* This CPU's count of the skb's device after this one; 0 if it counted none. */
static __always_inline __u64 rx_count(struct sk_buff *skb)
{
	struct net_device *dev = ST_READ(skb, dev);
	struct st_rx_key key;
	struct st_rx_slot *slot;
	struct st_rx_count first, *v;
	__u32 len, index;

	if (!dev)
		return 0;
	len = ST_READ(skb, len);
	key.ifindex = ST_READ(dev, ifindex);
	key.netns = ST_READ(dev, nd_net.net, ns.inum);
	index = st_rx_slot_of(&key);
	slot = bpf_map_lookup_elem(&st_rx_cache, &index);
	if (!slot)
		return 0;
	/* This CPU's copy, and the receive path runs with migration disabled: no atomics. */
	if (slot->key.ifindex == key.ifindex && slot->key.netns == key.netns) {
		slot->packets += 1;
		slot->bytes += len;
		return slot->packets;
	}
	if (!slot->key.ifindex) {
		rx_name(&key, dev);
		slot->key = key;
		slot->packets = 1;
		slot->bytes = len;
		return 1;
	}
	v = bpf_map_lookup_elem(&st_rx_devices, &key);
	if (!v) {
		rx_name(&key, dev);
		first.packets = 1;
		first.bytes = len;
		if (!bpf_map_update_elem(&st_rx_devices, &key, &first, BPF_NOEXIST))
			return 1;
		/* Another CPU added the device first: count on this CPU's copy. */
		v = bpf_map_lookup_elem(&st_rx_devices, &key);
		if (!v)
			return 0;
	}
	v->packets += 1;
	v->bytes += len;
	return v->packets;
}

static __always_inline void rx_skb(struct sk_buff *skb)
{
	__u64 seen = 0;

	if (st_cfg.flags & ST_CFG_RX_DEVICES)
		seen = rx_count(skb);
	if (dl_enabled())
		dl_stamp(skb, seen);
}

/* The skbs of a receive list, linked through skb->list. */
static __always_inline void rx_list(struct list_head *head)
{
	struct list_head *node = ST_READ(head, next);
	__u64 offset = bpf_core_field_offset(struct sk_buff, list);

	for (int i = 0; i < RX_LIST_MAX && node != head; i++) {
		rx_skb(st_cast((__u64)node - offset, struct sk_buff));
		node = ST_READ(st_cast(node, struct list_head), next);
	}
}

/* ---- hook "rx": every skb handed to the protocol stack ---- */

SEC("fentry/__netif_receive_skb_one_core")
int BPF_PROG(st_fe_netif_receive_skb_one_core, struct sk_buff *skb)
{
	rx_skb(skb);
	return 0;
}

SEC("fentry/__netif_receive_skb_list_core")
int BPF_PROG(st_fe_netif_receive_skb_list_core, struct list_head *head)
{
	rx_list(head);
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(st_tp_btf_netif_receive_skb, struct sk_buff *skb)
{
	rx_skb(skb);
	return 0;
}
