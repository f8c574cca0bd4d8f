// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * fd races. accept4() reserves its fd (get_unused_fd_flags()) before it waits and
 * publishes the file with fd_install() only at the end; meanwhile the slot is
 * reserved but empty, and dup2()/dup3() onto it fails with EBUSY (do_dup2(),
 * fs/file.c: "fget() and fd_install() race ... We need to detect this and fail").
 * An fd_install() onto a slot that already holds a file is the case fd_install()'s
 * comment calls "really bad things"; the kernel BUG()s on it (VFS_BUG_ON from 6.15, only
 * with CONFIG_DEBUG_VFS), so it is an invariant check that stays 0 on a correct kernel.
 * A close() that fails with EBADF shortly after another thread of the same process
 * closed the same number is a double close: two owners of one descriptor, and the next
 * time the second close lands on whatever the number names by then. The accept path
 * (fdrace.bpf.h) reads the closes recorded here for the fd reuse gap.
 */
#include "common.bpf.h"
#include "fdrace.bpf.h"

#define EBADF 9
#define EBUSY 16
#define EINVAL 22

/* dup2/dup3 target fd, by thread, between a kprobe's entry and return. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __s64);
} st_dup_calls SEC(".maps");

/* Only a process that accepts can race an accept: every other dup2() returns here. */
static __always_inline void remember_arg(void *map, long value)
{
	__u64 id = bpf_get_current_pid_tgid();
	__s64 v = value;

	if (!st_is_acceptor(id >> 32))
		return;
	if (bpf_map_update_elem(map, &id, &v, BPF_ANY))
		st_count(ST_COUNTER_PENDING_FULL);
}

/* Returns the argument remembered at entry, or -1, and forgets it. */
static __always_inline long recall_arg(void *map)
{
	__u64 id = bpf_get_current_pid_tgid();
	__s64 *v;
	long value;

	if (!st_is_acceptor(id >> 32))
		return -1;
	v = bpf_map_lookup_elem(map, &id);
	value = v ? *v : -1;
	if (v)
		bpf_map_delete_elem(map, &id);
	return value;
}

static __always_inline void dup_result(long newfd, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();

	st_self(id, ST_SELF_DUP);
	if (ret == -EBUSY && newfd >= 0 && st_is_acceptor(id >> 32))
		st_emit_race(ST_RACE_DUP2_BUSY, newfd, bpf_ktime_get_ns(), 0, 0);
}

/* At a dup2()/dup3() return that is EBUSY: its target fd is the syscall's second argument,
 * in the task's saved user registers (bpf_task_pt_regs(), 5.15). Every other return of
 * every process leaves at the first compare, and no entry program is needed; the
 * agent's self-test makes failing calls, EBADF and EINVAL, which the second one lets by. */
static __always_inline void dup_returned(long ret)
{
	struct pt_regs *regs;

	if (ret != -EBUSY) {
		if (ret == -EBADF || ret == -EINVAL)
			st_self(bpf_get_current_pid_tgid(), ST_SELF_DUP);
		return;
	}
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	dup_result(PT_REGS_PARM2_CORE_SYSCALL(regs), ret);
}

/* fd_install() onto an occupied slot: checked in processes that accept, whose reserved
 * fds are the ones a dup2() can race (every other process's fd_install() stops at the bit
 * test: it runs for every fd any process opens). */
static __always_inline void install(long fd)
{
	if (st_is_acceptor(bpf_get_current_pid_tgid() >> 32) && st_file_at(fd))
		st_emit_race(ST_RACE_INSTALL_OVERWRITE, fd, bpf_ktime_get_ns(), 0, 0);
}

/*
 * close(fd), judged on entry: the slot holds a file, so this close takes it out of the
 * table (close() frees the number even when the flush after it fails), or it holds none,
 * so close() fails with EBADF (file_close_fd_locked(), fs/file.c), also for a slot that
 * a pending accept reserved. Judging on entry needs no entry-to-return map, the costly
 * part of tracing every close() of every process. Only processes that accept are
 * followed: their closes are the ones an accept can hand out again or race with.
 */
static __always_inline void close_enter(long fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct st_close *last;
	__u64 now;

	st_self(id, ST_SELF_CLOSE);
	if (!st_is_acceptor(id >> 32))
		return;
	now = bpf_ktime_get_ns();
	if (st_file_at(fd)) {
		st_close_note(fd, now);
		return;
	}
	/* A single thread closing numbers it never opened (a daemon after fork) finds no
	 * close of another thread here. */
	last = st_close_find(fd);
	if (last && last->ns && last->tid != (__u32)id && now - last->ns <= st_cfg.double_close_window_ns)
		st_emit_race(ST_RACE_DOUBLE_CLOSE, fd, now, now - last->ns, last->tid);
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

SEC("tracepoint/syscalls/sys_exit_dup2")
int st_tp_exit_dup2(struct trace_event_raw_sys_exit *ctx)
{
	dup_returned(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_dup3")
int st_tp_exit_dup3(struct trace_event_raw_sys_exit *ctx)
{
	dup_returned(ctx->ret);
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

/* ---- hook "close" ----
 * close() ends in close_fd() (fs/open.c, fs/file.c) until 6.10. From 6.11 it calls
 * file_close_fd(), and close_fd() stays for other kernel callers; both take the fd out
 * of the table through file_close_fd_locked() and neither calls the other. Both are
 * hooked where they exist, so every kernel with kprobes or fentry sees every close
 * without a syscall tracepoint and its cost on every syscall. Entry alone: close_enter()
 * needs no return value. */

SEC("fentry/close_fd")
int BPF_PROG(st_fe_close_fd, unsigned int fd)
{
	close_enter(fd);
	return 0;
}

SEC("fentry/file_close_fd")
int BPF_PROG(st_fe_file_close_fd, unsigned int fd)
{
	close_enter(fd);
	return 0;
}

SEC("kprobe/close_fd")
int BPF_KPROBE(st_kp_close_fd, unsigned int fd)
{
	close_enter(fd);
	return 0;
}

SEC("kprobe/file_close_fd")
int BPF_KPROBE(st_kp_file_close_fd, unsigned int fd)
{
	close_enter(fd);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_close")
int st_tp_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	close_enter(ctx->args[0]);
	return 0;
}
