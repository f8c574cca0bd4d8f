// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What the least per-packet accounting costs, beside the agent's receive program
 * (bpf/rx.bpf.c): scripts/bench-rx-floor.sh builds this file once per RX_VARIANT and runs
 * each alone on tp_btf/netif_receive_skb, interleaved with the agent.
 *   empty   nothing (the dispatch and bpf_stats' two clock reads);
 *   read    the skb's device, its length and the device's ifindex, no map;
 *   count   one per-CPU counter, no read of the skb;
 *   device  read + count: packets and bytes per device in a per-CPU slot, the least that
 *           says which device a packet came through.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct rx_slot {
	__u32 ifindex;
	__u64 packets, bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct rx_slot);
} slots SEC(".maps");

/* Where "read" stores what it read, only if it is impossible: the loads stay, no store. */
__u32 sink;

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(rx_floor, struct sk_buff *skb)
{
#if RX_VARIANT == RX_EMPTY
	return 0;
#elif RX_VARIANT == RX_COUNT
	__u32 zero = 0;
	struct rx_slot *slot = bpf_map_lookup_elem(&slots, &zero);

	if (slot)
		slot->packets++;
	return 0;
#else
	struct net_device *dev = skb->dev;
	__u32 len = skb->len, ifindex, index;
	struct rx_slot *slot;

	if (!dev)
		return 0;
	ifindex = dev->ifindex;
#if RX_VARIANT == RX_READ
	if (ifindex == 0x7fffffff)
		sink = len;
	return 0;
#else
	index = (ifindex * 2654435761u) % 256;
	slot = bpf_map_lookup_elem(&slots, &index);
	if (!slot)
		return 0;
	if (slot->ifindex != ifindex) {
		slot->ifindex = ifindex;
		slot->packets = 0;
		slot->bytes = 0;
	}
	slot->packets++;
	slot->bytes += len;
	return 0;
#endif
#endif
}
