// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The accept path: how long accept()/accept4() takes, which connection it returned from
 * which listener, and which errors it returned.
 *
 * A successful accept is an event: one ring buffer record with everything the agent needs
 * (the peer, the listener and its queues, the fd reuse gap). A failed one is only counted,
 * per CPU, in st_error_cache or st_accept_errors, which the agent reads at scrape
 * time: an EAGAIN poller makes millions of calls a second, and no count is lost to a full
 * ring. How long a connection
 * waited in the queue, and whether its peer is a socket of this host, the agent joins from
 * the records of bpf/state.bpf.c.
 */
#include "common.bpf.h"
#include "fdrace.bpf.h"
#include "listen.bpf.h"
#include <bpf/bpf_endian.h>

#define EEXIST 17
#define O_NONBLOCK 04000


struct accept_call {
	__u64 enter_ns;   /* 0: not stamped (a non-blocking call on an empty queue) */
	__u64 listener;   /* the listening sock accept() was called on */
	__u64 registered; /* task storage: the listener this thread last made sure of in st_listen */
	__u16 lport;
	__u8 inet;        /* 0: not a TCP/IP listener (AF_UNIX, not a socket): no record */
	__u8 active;      /* task storage: between entry and return */
	__u32 _pad;
};

/*
 * The call in flight, in the thread's own task storage: after a thread's first accept,
 * entry and return are stores and loads, no map update, and the entry goes with the thread.
 * Every accept call has one, one on a UNIX socket too, so that each return finds its own
 * call's: a return that finds none is a loss (ST_COUNTER_NO_ENTRY), and a call that finds
 * its thread's previous one still active is a lost return (ST_COUNTER_RETURN_MISSED).
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct accept_call);
} st_accept_threads SEC(".maps");

/* The same by thread id where the kernel has no task storage (before 5.11). LRU: a thread
 * killed inside accept never returns. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct accept_call);
} st_accept_calls SEC(".maps");

/* Failed accepts by cgroup, listening port, errno and process, per CPU, for the keys whose
 * slot of st_error_cache (below) another key holds; a count per key.
 * Not LRU, so that a count is never evicted: a key that does not fit is counted in
 * ST_COUNTER_ERRORS_LOST, and the agent deletes the keys that stopped changing (a
 * listener's port can be ephemeral). Not preallocated: memory for the keys in use only;
 * before 6.1 the agent preallocates it, as tracing programs then warn (5.10: WARN_ONCE in
 * check_map_prog_compatibility(), kernel/bpf/verifier.c) or, on PREEMPT_RT, fail to load. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, struct st_accept_error_key);
	__type(value, __u64);
} st_accept_errors SEC(".maps");

/* The keys in use, each counted with one store in the slot it hashes to (socktrace.h): an
 * EAGAIN poller's calls cost an inlined array lookup, not a hash lookup (about 60 ns a call
 * here, scripts/bench-hotpath.sh). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_ACCEPT_ERROR_SLOTS);
	__type(key, __u32);
	__type(value, struct st_accept_error_slot);
} st_error_cache SEC(".maps");

static __always_inline void call_begin(const struct accept_call *call)
{
	struct accept_call *c;
	__u64 id;
	/*
	 * int, not long: the verifier turns this helper call into a direct call of the map's
	 * update op, which returned int until 6.4 (commit d7ba4cc900bf, "bpf: return long from
	 * bpf_map_ops funcs"), so before then -EEXIST arrives zero-extended (0xffffffef) and a
	 * 64-bit compare never matches it. Compared as int it matches on every kernel.
	 */
	int err;

	if (st_task_storage()) {
		__u64 registered;

		c = bpf_task_storage_get(&st_accept_threads, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!c) {
			st_count(ST_COUNTER_PENDING_FULL);
			return;
		}
		if (c->active)
			st_count(ST_COUNTER_RETURN_MISSED);
		registered = c->registered;
		*c = *call;
		c->registered = registered;
		c->active = 1;
		return;
	}
	/* BPF_NOEXIST: one map write on the common path, and a left-over entry is seen. */
	id = bpf_get_current_pid_tgid();
	err = bpf_map_update_elem(&st_accept_calls, &id, call, BPF_NOEXIST);
	if (err == -EEXIST) {
		st_count(ST_COUNTER_RETURN_MISSED);
		err = bpf_map_update_elem(&st_accept_calls, &id, call, BPF_ANY);
	}
	if (err)
		st_count(ST_COUNTER_PENDING_FULL);
}

/* The call this return ends, into out; its task storage (to update), or NULL. Returns 0
 * when there is none: the call began before the programs were attached, or its entry was
 * evicted from the full LRU map. */
static __always_inline int call_end(__u64 id, struct accept_call *out, struct accept_call **storage)
{
	struct accept_call *c;

	*storage = NULL;
	if (st_task_storage()) {
		c = bpf_task_storage_get(&st_accept_threads, bpf_get_current_task_btf(), 0, 0);
		if (!c || !c->active)
			return 0;
		c->active = 0;
		*out = *c;
		*storage = c;
		return 1;
	}
	c = bpf_map_lookup_elem(&st_accept_calls, &id);
	if (!c)
		return 0;
	*out = *c;
	bpf_map_delete_elem(&st_accept_calls, &id);
	return 1;
}

static __always_inline void accept_enter_file(struct file *file)
{
	struct sock *sk = st_sock_of_file(file);
	__u16 family = sk ? ST_READ(sk, __sk_common.skc_family) : 0;
	struct accept_call call = {};

	/* Only TCP/IP listeners make records: accept on a UNIX socket has no port to report. */
	if (family == ST_AF_INET || family == ST_AF_INET6) {
		st_mark_acceptor(bpf_get_current_pid_tgid() >> 32);
		call.inet = 1;
		call.listener = (__u64)sk;
		call.lport = ST_READ(sk, __sk_common.skc_num);
		/* A non-blocking call on an empty queue fails with EAGAIN (inet_csk_accept(),
		 * net/ipv4/inet_connection_sock.c) and needs no clock; one that a connection
		 * beats to the queue takes no time either. */
		if (!(ST_READ(file, f_flags) & O_NONBLOCK) || ST_READ(sk, sk_ack_backlog))
			call.enter_ns = bpf_ktime_get_ns();
	}
	call_begin(&call);
}

static __always_inline void accept_enter(long listen_fd)
{
	accept_enter_file(st_file_at(listen_fd));
}

/* The cache slot of a key: its four words mixed (Fibonacci hashing). */
static __always_inline __u32 error_slot_of(const struct st_accept_error_key *key)
{
	const __u64 *w = (const __u64 *)key;
	__u64 h = (((w[0] * 0x9e3779b97f4a7c15ULL) ^ w[1]) * 0x9e3779b97f4a7c15ULL ^ w[2] ^ w[3]) * 0x9e3779b97f4a7c15ULL;

	return (h >> 32) % ST_ACCEPT_ERROR_SLOTS;
}

static __always_inline int error_key_equal(const struct st_accept_error_key *a, const struct st_accept_error_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

static __always_inline void count_error(const struct accept_call *call, long err)
{
	struct st_accept_error_key key = { .cgroup_id = bpf_get_current_cgroup_id(), .lport = call->lport, .err = err };
	struct st_accept_error_slot *slot;
	__u64 one = 1, *count;
	__u32 index;

	st_process_comm(key.comm);
	index = error_slot_of(&key);
	slot = bpf_map_lookup_elem(&st_error_cache, &index);
	if (slot) {
		/* This CPU's copy: no atomics. A free slot's key is zero, no key's is (err > 0). */
		if (error_key_equal(&slot->key, &key)) {
			slot->count += 1;
			return;
		}
		if (!slot->count) {
			slot->key = key;
			barrier(); /* the key before the count */
			slot->count = 1;
			return;
		}
	}
	count = bpf_map_lookup_elem(&st_accept_errors, &key);
	if (count) {
		/* This CPU's copy: no atomics. */
		*count += 1;
		return;
	}
	if (!bpf_map_update_elem(&st_accept_errors, &key, &one, BPF_NOEXIST))
		return;
	/* Another CPU added the key first: count on this CPU's copy. */
	count = bpf_map_lookup_elem(&st_accept_errors, &key);
	if (count)
		*count += 1;
	else
		st_count(ST_COUNTER_ERRORS_LOST);
}

static __always_inline void accept_record(const struct accept_call *call, long fd)
{
	struct sock *listener = st_cast(call->listener, struct sock);
	struct sock *sk = st_sock_of_file(st_file_at(fd));
	__u64 id = bpf_get_current_pid_tgid();
	__u64 now = bpf_ktime_get_ns();
	__u64 closed_ns = st_fd_closed_by_other(fd);
	struct st_accept_record *rec = st_reserve(sizeof(*rec));

	if (!rec)
		return;
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->hdr.type = ST_RECORD_ACCEPT;
	rec->hdr.size = sizeof(*rec);
	rec->pid = id >> 32;
	rec->tid = (__u32)id;
	rec->ret = fd;
	rec->lport = call->lport;
	rec->enter_ns = call->enter_ns ? call->enter_ns : now;
	rec->exit_ns = now;
	rec->cgroup_id = bpf_get_current_cgroup_id();
	rec->fd_closed_ns = closed_ns;
	st_process_comm(rec->comm);
	rec->listener = call->listener;
	rec->netns = st_netns_of(listener);
	rec->queue_depth = ST_READ(listener, sk_ack_backlog);
	rec->queue_limit = ST_READ(listener, sk_max_ack_backlog);
	rec->syn_queue = st_syn_queue_len(listener);
	/* fd_install() has run by the time accept returns: the fd table has the new sock. */
	if (sk) {
		rec->sk = (__u64)sk;
		rec->family = ST_READ(sk, __sk_common.skc_family);
		rec->peer_port = bpf_ntohs(ST_READ(sk, __sk_common.skc_dport));
		st_peer_addr(sk, rec->family, rec->peer_addr);
	}
	st_submit(rec);
}

static __always_inline void accept_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct accept_call call, *storage;

	if (!call_end(id, &call, &storage)) {
		st_count(ST_COUNTER_NO_ENTRY);
		return;
	}
	st_self(id, ST_SELF_ACCEPT);
	if (!call.inet)
		return;
	if (ret < 0) {
		count_error(&call, -ret);
		return;
	}
	/* The listener's entry, for the hooks that count its drops; a thread that keeps
	 * accepting on one listener makes sure of it once. */
	if (call.registered != call.listener) {
		st_listen_entry(st_cast(call.listener, struct sock));
		if (storage)
			storage->registered = call.listener;
	}
	accept_record(&call, ret);
}

/* ---- hook "accept": the accept()/accept4() call ---- */

/* __sys_accept4() serves both accept() and accept4() (net/socket.c). io_uring accepts
 * through do_accept() from 5.15, not through it: the accept_io_uring hook counts those. */
SEC("fentry/__sys_accept4")
int BPF_PROG(st_fe_sys_accept4, int fd)
{
	accept_enter(fd);
	return 0;
}

/* The return value after the arguments: no bpf_get_func_ret() (5.17) needed. */
SEC("fexit/__sys_accept4")
int BPF_PROG(st_fx_sys_accept4, int fd, void *upeer_sockaddr, int *upeer_addrlen, int flags, int ret)
{
	accept_exit(ret);
	return 0;
}

/* Before 5.15 (no do_accept()), io_uring's io_accept() and __sys_accept4() both call
 * __sys_accept4_file(), which takes the listener's file and returns the new fd: hooked
 * instead of __sys_accept4(), it sees both. */
SEC("fentry/__sys_accept4_file")
int BPF_PROG(st_fe_sys_accept4_file, struct file *file)
{
	accept_enter_file(file);
	return 0;
}

SEC("fexit/__sys_accept4_file")
int BPF_PROG(st_fx_sys_accept4_file, struct file *file, unsigned int file_flags, void *upeer_sockaddr, int *upeer_addrlen,
	     int flags, unsigned long nofile, int ret)
{
	accept_exit(ret);
	return 0;
}

SEC("kprobe/__sys_accept4")
int BPF_KPROBE(st_kp_sys_accept4, int fd)
{
	accept_enter(fd);
	return 0;
}

SEC("kretprobe/__sys_accept4")
int BPF_KRETPROBE(st_krp_sys_accept4, long ret)
{
	accept_exit((int)ret);
	return 0;
}

SEC("kprobe/__sys_accept4_file")
int BPF_KPROBE(st_kp_sys_accept4_file, struct file *file)
{
	accept_enter_file(st_cast(file, struct file));
	return 0;
}

SEC("kretprobe/__sys_accept4_file")
int BPF_KRETPROBE(st_krp_sys_accept4_file, long ret)
{
	accept_exit((int)ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_accept4")
int st_tp_enter_accept4(struct trace_event_raw_sys_enter *ctx)
{
	accept_enter(ctx->args[0]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int st_tp_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	accept_exit(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_accept")
int st_tp_enter_accept(struct trace_event_raw_sys_enter *ctx)
{
	accept_enter(ctx->args[0]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int st_tp_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	accept_exit(ctx->ret);
	return 0;
}

/* ---- hook "accept_io_uring": IORING_OP_ACCEPT, single-shot and multishot ----
 *
 * An accept request is seen when it is submitted (its listener is its fd, in the submitting
 * process's table: the SQPOLL thread shares it) and at each completion it posts: one, or
 * with IORING_ACCEPT_MULTISHOT one per connection while IORING_CQE_F_MORE is set. A
 * multishot request posts through io_post_aux_cqe(), which passes no request to the
 * tracepoint, so requests are known by their ring and user_data, which every completion
 * carries. A completion is posted where the accepted fd is already installed in the
 * process's table (io_accept(), io_uring/net.c): its file gives the accepted sock. Each
 * completion's time is counted from its request's submission, or its previous completion.
 */
#define IORING_OP_ACCEPT 13
#define IORING_CQE_F_MORE (1U << 1)
#define REQ_F_FIXED_FILE 1 /* REQ_F_FIXED_FILE_BIT is IOSQE_FIXED_FILE_BIT, 0 */

struct uring_key {
	__u64 ring;
	__u64 user_data;
};

/* LRU: a request cancelled with its ring may post no last completion. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct uring_key);
	__type(value, struct accept_call);
} st_uring_accepts SEC(".maps");

/* io_uring_submit_sqe, as the tracepoint was called before 5.19 (Debian's 5.10 has it, with
 * 5.15's io_uring): its request, opcode, user_data and flags, as io_uring_submit_req has them. */
struct trace_event_raw_io_uring_submit_sqe {
	struct trace_entry ent;
	void *ctx;
	void *req;
	__u8 opcode;
	__u64 user_data;
	__u32 flags;
} __attribute__((preserve_access_index));

/* io_kiocb before io_uring kept a request's fd in cqe (6.0): no cqe, its file set at submission. */
struct io_kiocb___old {
	struct file *file;
} __attribute__((preserve_access_index));

static __always_inline void uring_submitted(void *ring, void *request, __u8 opcode, __u64 user_data, __u64 flags)
{
	struct uring_key key = { .ring = (__u64)ring, .user_data = user_data };
	struct io_kiocb *req = st_cast(request, struct io_kiocb);
	struct accept_call call = {};
	struct file *file;
	struct sock *sk;
	__u16 family;

	if (opcode != IORING_OP_ACCEPT)
		return;
	/* Until 6.0 the listener's file is the request's at submission (its fixed file too);
	 * from then on it is looked up when the request is issued, and the fd is in cqe. */
	if (!bpf_core_field_exists(req->cqe)) {
		file = st_cast(ST_READ((struct io_kiocb___old *)req, file), struct file);
	} else if (flags & REQ_F_FIXED_FILE) {
		/* A listener in the ring's fixed files is not in the process's table. */
		st_count(ST_COUNTER_URING_FIXED);
		return;
	} else {
		file = st_file_at(ST_READ(req, cqe.fd));
	}
	sk = st_sock_of_file(file);
	family = sk ? ST_READ(sk, __sk_common.skc_family) : 0;
	if (family != ST_AF_INET && family != ST_AF_INET6)
		return;
	st_mark_acceptor(bpf_get_current_pid_tgid() >> 32);
	call.inet = 1;
	call.listener = (__u64)sk;
	call.lport = ST_READ(sk, __sk_common.skc_num);
	call.enter_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&st_uring_accepts, &key, &call, BPF_ANY))
		st_count(ST_COUNTER_PENDING_FULL);
}

static __always_inline void uring_completed(struct trace_event_raw_io_uring_complete *ctx)
{
	struct uring_key key = { .ring = (__u64)ctx->ctx, .user_data = ctx->user_data };
	struct accept_call *call, copy;
	struct sock *sk;
	int res = ctx->res;

	/* Most completions are of other requests: where the request is named (5.19 on), its
	 * opcode says so at the cost of a load. */
	if (bpf_core_field_exists(ctx->req) && st_casts() && ctx->req &&
	    st_cast(ctx->req, struct io_kiocb)->opcode != IORING_OP_ACCEPT)
		return;
	call = bpf_map_lookup_elem(&st_uring_accepts, &key);
	if (!call)
		return;
	copy = *call;
	if (res < 0) {
		count_error(&copy, -res);
	} else {
		/* An accept into the ring's fixed files returns a slot, not an fd: the sock in the
		 * process's table at that number, if any, is not of this listener's port. */
		sk = st_sock_of_file(st_file_at(res));
		if (sk && ST_READ(sk, __sk_common.skc_num) == copy.lport) {
			st_listen_entry(st_cast(copy.listener, struct sock));
			accept_record(&copy, res);
		} else {
			st_count(ST_COUNTER_URING_FIXED);
		}
	}
	if (ctx->cflags & IORING_CQE_F_MORE)
		call->enter_ns = bpf_ktime_get_ns();
	else
		bpf_map_delete_elem(&st_uring_accepts, &key);
}

SEC("tracepoint/io_uring/io_uring_submit_req")
int st_tp_io_uring_submit_req(struct trace_event_raw_io_uring_submit_req *ctx)
{
	uring_submitted(ctx->ctx, ctx->req, ctx->opcode, ctx->user_data, ctx->flags);
	return 0;
}

SEC("tracepoint/io_uring/io_uring_submit_sqe")
int st_tp_io_uring_submit_sqe(struct trace_event_raw_io_uring_submit_sqe *ctx)
{
	uring_submitted(ctx->ctx, ctx->req, ctx->opcode, ctx->user_data, ctx->flags);
	return 0;
}

SEC("tracepoint/io_uring/io_uring_complete")
int st_tp_io_uring_complete(struct trace_event_raw_io_uring_complete *ctx)
{
	uring_completed(ctx);
	return 0;
}
