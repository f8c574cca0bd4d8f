// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The floor under the agent's hot path: an empty program on each attach point the agent
 * uses in tracepoint mode (agent/SockTrace.Agent/Bpf/Hooks.cs). What one of these costs a
 * run is the kernel's dispatch, plus bpf_stats' own two clock reads, with no work at all:
 * scripts/bench-hotpath.sh measures it beside the agent, operation for operation.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EMPTY_TP(name, event) \
	SEC("tracepoint/" event) int name(void *ctx) { return 0; }
#define EMPTY_BTF(name, event) \
	SEC("tp_btf/" event) int name(void *ctx) { return 0; }

EMPTY_TP(fl_enter_accept4, "syscalls/sys_enter_accept4")
EMPTY_TP(fl_exit_accept4, "syscalls/sys_exit_accept4")
EMPTY_TP(fl_enter_accept, "syscalls/sys_enter_accept")
EMPTY_TP(fl_exit_accept, "syscalls/sys_exit_accept")
EMPTY_TP(fl_exit_dup2, "syscalls/sys_exit_dup2")
EMPTY_TP(fl_exit_dup3, "syscalls/sys_exit_dup3")
EMPTY_TP(fl_enter_close, "syscalls/sys_enter_close")
EMPTY_BTF(fl_inet_sock_set_state, "inet_sock_set_state")
EMPTY_BTF(fl_netif_receive_skb, "netif_receive_skb")
EMPTY_BTF(fl_sk_data_ready, "sk_data_ready")
EMPTY_BTF(fl_consume_skb, "consume_skb")
EMPTY_BTF(fl_kfree_skb, "kfree_skb")
