// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * fd races. accept4() reserves its fd (get_unused_fd_flags()) before it waits and
 * publishes the file with fd_install() only at the end; meanwhile the slot is
 * reserved but empty, and dup2()/dup3() onto it fails with EBUSY (do_dup2(),
 * fs/file.c: "fget() and fd_install() race ... We need to detect this and fail").
 * An fd_install() onto a slot that already holds a file is the case fd_install()'s
 * comment calls "really bad things". reuse_after_close is detected on the accept
 * path (fdrace.bpf.h) from the closes recorded here.
 */
#include "common.bpf.h"
#include "fdrace.bpf.h"

#define EBUSY 16

/* dup2/dup3 target fd, by thread, between entry and return. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __s64);
} st_dup_calls SEC(".maps");

/* close() fd, by thread, between entry and return. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __s64);
} st_close_calls SEC(".maps");

static __always_inline void remember_arg(void *map, long value)
{
	__u64 id = bpf_get_current_pid_tgid();
	__s64 v = value;

	if (bpf_map_update_elem(map, &id, &v, BPF_ANY))
		st_count(ST_COUNTER_PENDING_FULL);
}

/* Returns the argument remembered at entry, or -1, and forgets it. */
static __always_inline long recall_arg(void *map)
{
	__u64 id = bpf_get_current_pid_tgid();
	__s64 *v = bpf_map_lookup_elem(map, &id);
	long value = v ? *v : -1;

	if (v)
		bpf_map_delete_elem(map, &id);
	return value;
}

static __always_inline void dup_result(long newfd, long ret)
{
	if (ret == -EBUSY && newfd >= 0)
		st_emit_race(ST_RACE_DUP2_BUSY, newfd, bpf_ktime_get_ns(), 0, 0);
}

static __always_inline void install(long fd)
{
	if (st_file_at(st_fdtable(), fd))
		st_emit_race(ST_RACE_INSTALL_OVERWRITE, fd, bpf_ktime_get_ns(), 0, 0);
}

static __always_inline void closed(long fd, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct st_fd_key key = { .tgid = id >> 32, .fd = fd };
	struct st_close value = { .ns = bpf_ktime_get_ns(), .tid = (__u32)id };

	if (ret == 0 && fd >= 0)
		bpf_map_update_elem(&st_closes, &key, &value, BPF_ANY);
}

/* ---- hook "dup": do_dup2() is where both dup2() and dup3() end (fs/file.c) ---- */

SEC("fexit/do_dup2")
int BPF_PROG(st_fx_do_dup2, struct files_struct *files, struct file *file, unsigned int fd, unsigned int flags, int ret)
{
	dup_result(fd, ret);
	return 0;
}

SEC("kprobe/do_dup2")
int BPF_KPROBE(st_kp_do_dup2, struct files_struct *files, struct file *file, unsigned int fd)
{
	remember_arg(&st_dup_calls, fd);
	return 0;
}

SEC("kretprobe/do_dup2")
int BPF_KRETPROBE(st_krp_do_dup2, int ret)
{
	dup_result(recall_arg(&st_dup_calls), ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_dup2")
int st_tp_enter_dup2(struct trace_event_raw_sys_enter *ctx)
{
	remember_arg(&st_dup_calls, ctx->args[1]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_dup2")
int st_tp_exit_dup2(struct trace_event_raw_sys_exit *ctx)
{
	dup_result(recall_arg(&st_dup_calls), ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_dup3")
int st_tp_enter_dup3(struct trace_event_raw_sys_enter *ctx)
{
	remember_arg(&st_dup_calls, ctx->args[1]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_dup3")
int st_tp_exit_dup3(struct trace_event_raw_sys_exit *ctx)
{
	dup_result(recall_arg(&st_dup_calls), ctx->ret);
	return 0;
}

/* ---- hook "fd_install": no tracepoint exists there ---- */

SEC("fentry/fd_install")
int BPF_PROG(st_fe_fd_install, unsigned int fd)
{
	install(fd);
	return 0;
}

SEC("kprobe/fd_install")
int BPF_KPROBE(st_kp_fd_install, unsigned int fd)
{
	install(fd);
	return 0;
}

/* ---- hook "close": the closes reuse_after_close is judged against ----
 * close() ends in close_fd() (fs/open.c, fs/file.c) until 6.10. From 6.11 it calls
 * file_close_fd(), which takes the file out of the table and returns it (NULL: no such
 * fd), and close_fd() stays for other kernel callers, on top of file_close_fd(). Both
 * are hooked where they exist, so every kernel with kprobes or fentry sees every close
 * without a syscall tracepoint and its cost on every syscall; a close seen by both
 * writes the same entry twice. The fd is free again once it is out of the table, so
 * that, not the flush after it, is the close that matters here. */

SEC("fexit/close_fd")
int BPF_PROG(st_fx_close_fd, unsigned int fd, int ret)
{
	closed(fd, ret);
	return 0;
}

SEC("fexit/file_close_fd")
int BPF_PROG(st_fx_file_close_fd, unsigned int fd, struct file *ret)
{
	closed(fd, ret ? 0 : -1);
	return 0;
}

SEC("kprobe/close_fd")
int BPF_KPROBE(st_kp_close_fd, unsigned int fd)
{
	remember_arg(&st_close_calls, fd);
	return 0;
}

SEC("kretprobe/close_fd")
int BPF_KRETPROBE(st_krp_close_fd, int ret)
{
	closed(recall_arg(&st_close_calls), ret);
	return 0;
}

/* Nested in close_fd() from 6.11: its entry overwrites the same fd under the same
 * thread, its return records the close and forgets it, and close_fd()'s return then
 * finds nothing (fd -1, ignored). */
SEC("kprobe/file_close_fd")
int BPF_KPROBE(st_kp_file_close_fd, unsigned int fd)
{
	remember_arg(&st_close_calls, fd);
	return 0;
}

SEC("kretprobe/file_close_fd")
int BPF_KRETPROBE(st_krp_file_close_fd, struct file *ret)
{
	closed(recall_arg(&st_close_calls), ret ? 0 : -1);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_close")
int st_tp_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	remember_arg(&st_close_calls, ctx->args[0]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_close")
int st_tp_exit_close(struct trace_event_raw_sys_exit *ctx)
{
	closed(recall_arg(&st_close_calls), ctx->ret);
	return 0;
}
