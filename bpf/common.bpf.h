/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Maps and helpers every SockTrace program shares.
 *
 * Program names say how each one attaches: st_fe_ fentry, st_fx_ fexit, st_kp_ kprobe,
 * st_krp_ kretprobe, st_tp_ a tracepoint, st_tp_btf_ a BTF tracepoint (tp_btf). The agent
 * picks one mode per hook at start-up (agent/SockTrace.Agent/Bpf/Hooks.cs) and loads only
 * that mode's programs; the modes' entry points call the same bodies, so they compute the
 * same records.
 */
#ifndef SOCKTRACE_COMMON_BPF_H
#define SOCKTRACE_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "socktrace.h"

#define ST_AF_INET 2
#define ST_AF_INET6 10

/* Shared by every feature file (bpf/socktrace.bpf.c includes them all). */

/* Sized by the agent before load (bpf_map__set_max_entries). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} st_events SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_COUNTER_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} st_counters SEC(".maps") __weak;

/* The only .rodata global, at offset 0: the agent writes it between open and load. */
const volatile struct st_config st_cfg __weak = {};

static __always_inline int st_casts(void)
{
	return st_cfg.flags & ST_CFG_CASTS;
}

static __always_inline int st_task_storage(void)
{
	return st_cfg.flags & ST_CFG_TASK_STORAGE;
}

/*
 * Reading kernel memory. A bpf_probe_read_kernel() costs about 40 ns here, so where the
 * kernel has bpf_rdonly_cast() (6.2) a pointer is cast to its type once and its fields are
 * plain loads, which the verifier makes fault-safe (PROBE_MEM: a bad address reads 0).
 * Elsewhere (ST_CFG_CASTS clear) the same expressions read field by field with
 * BPF_CORE_READ. The flag is constant to the verifier, so a kernel without the kfunc
 * never sees the call (libbpf leaves a missing __weak kfunc unresolved).
 */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

#define st_cast(ptr, type) \
	(st_casts() ? (type *)bpf_rdonly_cast((const void *)(ptr), bpf_core_type_id_kernel(type)) : (type *)(ptr))

/* src->a->b...: CO-RE relocated either way. */
#define ST_READ(src, a, ...) \
	(st_casts() ? ___arrow((src), a, ##__VA_ARGS__) : BPF_CORE_READ((src), a, ##__VA_ARGS__))

#define ST_READ_INTO(dst, src, a, ...)                                                       \
	({                                                                                   \
		if (st_casts())                                                              \
			__builtin_memcpy(dst, &___arrow((src), a, ##__VA_ARGS__), sizeof(*(dst))); \
		else                                                                         \
			BPF_CORE_READ_INTO(dst, src, a, ##__VA_ARGS__);                      \
	})

/*
 * The current task, typed where casts work (bpf_get_current_task_btf(), 5.11), and cast
 * there to an untrusted pointer: for each pointer loaded through a trusted one the verifier
 * looks up, by name, whether the field is marked trusted (btf_nested_type_is_trusted(),
 * kernel/bpf/btf.c), a search of the kernel's 100,000-odd BTF types per load and path,
 * which was milliseconds of each program's load. The loads are the same PROBE_MEM loads
 * either way, and the cast is one register move (fixup_kfunc_call(), kernel/bpf/verifier.c).
 */
static __always_inline struct task_struct *st_current(void)
{
	if (st_casts())
		return st_cast(bpf_get_current_task_btf(), struct task_struct);
	return (struct task_struct *)bpf_get_current_task();
}

/* The file in the calling process's fd slot, or NULL when the slot is empty or out of range. */
static __always_inline struct file *st_file_at(long n)
{
	struct fdtable *fdt = ST_READ(st_current(), files, fdt);
	struct file **fds = ST_READ(fdt, fd);
	struct file *file = NULL;

	if (n < 0 || n >= ST_READ(fdt, max_fds))
		return NULL;
	if (st_casts()) {
		/* The slot read as the one pointer of a struct list_head: a load, not a helper. */
		struct list_head *slot = st_cast((__u64)fds + n * sizeof(*fds), struct list_head);

		return st_cast(slot->next, struct file);
	}
	bpf_probe_read_kernel(&file, sizeof(file), &fds[n]);
	return file;
}

#define ST_S_IFMT 00170000
#define ST_S_IFSOCK 0140000

/*
 * The sock of a socket file, or NULL. A socket file's private_data is its struct socket
 * (sock_alloc_file(), net/socket.c); the inode mode check keeps other files out.
 */
static __always_inline struct sock *st_sock_of_file(struct file *file)
{
	struct socket *sock;

	if (!file || (ST_READ(file, f_inode, i_mode) & ST_S_IFMT) != ST_S_IFSOCK)
		return NULL;
	sock = st_cast(ST_READ(file, private_data), struct socket);
	return st_cast(ST_READ(sock, sk), struct sock);
}

/* The process's name, not the thread's ("worker-3"): bounded and stable as a label. */
static __always_inline void st_process_comm(char comm[ST_COMM_LEN])
{
	if (st_casts())
		__builtin_memcpy(comm, st_current()->group_leader->comm, ST_COMM_LEN);
	else
		BPF_CORE_READ_STR_INTO((char (*)[ST_COMM_LEN])comm, st_current(), group_leader, comm);
}

/* The network namespace's inode number, as in /proc/PID/ns/net. */
static __always_inline __u32 st_netns_of(const struct sock *sk)
{
	return ST_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline void st_count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&st_counters, &slot);

	if (v)
		*v += 1;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_SELF_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} st_self_seen SEC(".maps");

/* A call of the agent's own, which its self-test makes to see that the hook fires. */
static __always_inline void st_self(__u64 pid_tgid, __u32 slot)
{
	__u64 *v;

	if ((__u32)(pid_tgid >> 32) != st_cfg.self_tgid)
		return;
	v = bpf_map_lookup_elem(&st_self_seen, &slot);
	if (v)
		*v += 1;
}

/*
 * Reserve a record, counting every attempt and each loss when the ring is full, so the
 * agent can prove produced = delivered + dropped instead of trusting that nothing else
 * went missing.
 */
static __always_inline void *st_reserve(__u32 size)
{
	void *rec;

	st_count(ST_COUNTER_PRODUCED);
	rec = bpf_ringbuf_reserve(&st_events, size, 0);

	if (!rec)
		st_count(ST_COUNTER_RINGBUF_DROPS);
	return rec;
}

/*
 * No wakeup per record: the reader polls on a bounded interval and is woken only
 * when enough data is pending, so a busy accept path costs no extra context
 * switches (a wakeup is an irq_work plus a reader context switch per record).
 */
static __always_inline void st_submit(void *rec)
{
	__u64 pending = bpf_ringbuf_query(&st_events, BPF_RB_AVAIL_DATA);

	bpf_ringbuf_submit(rec, pending >= st_cfg.wakeup_bytes ? BPF_RB_FORCE_WAKEUP
							      : BPF_RB_NO_WAKEUP);
}

/* A sock's own address (skc_rcv_saddr) and its peer's (skc_daddr): IPv4 in the first 4 bytes. */
static __always_inline void st_local_addr(const struct sock *sk, __u16 family, __u8 addr[16])
{
	if (family == ST_AF_INET)
		/* Through a __u32 pointer: the macro reads sizeof(*dst) bytes. */
		ST_READ_INTO((__u32 *)addr, sk, __sk_common.skc_rcv_saddr);
	else
		ST_READ_INTO((__u8 (*)[16])addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
}

static __always_inline void st_peer_addr(const struct sock *sk, __u16 family, __u8 addr[16])
{
	if (family == ST_AF_INET)
		ST_READ_INTO((__u32 *)addr, sk, __sk_common.skc_daddr);
	else
		ST_READ_INTO((__u8 (*)[16])addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
}

#endif
