// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The accept path: how long accept()/accept4() takes, how long the accepted
 * connection sat established in the listen queue, and which errors it returned.
 *
 * Each hook has an entry point per attach mode (fentry/fexit, kprobe/kretprobe,
 * tracepoint) calling one shared body, so every mode computes the same record. The
 * agent picks the mode per hook at start-up and loads only those programs.
 */
#include "common.bpf.h"
#include "fdrace.bpf.h"
#include "listen.bpf.h"
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define EEXIST 17

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct accept_call {
	__u64 enter_ns;
	__u64 sk; /* the accepted sock, when a hook on inet_csk_accept saw it */
	__u64 listener; /* the listening sock accept() was called on */
	__u16 lport;
	__u16 inet; /* 0: not a TCP/IP listener (AF_UNIX, not a socket): no record */
	__u16 _pad[2];
};

/*
 * Calls in flight, by thread. LRU: a thread killed inside accept never returns.
 * Every accept call has an entry, one on a UNIX socket too, so that each return finds
 * its own call's entry: a return that finds none is a loss (ST_COUNTER_NO_ENTRY), and a
 * call that finds its thread's previous entry still here is a lost return
 * (ST_COUNTER_RETURN_MISSED), never a UNIX accept taking over a TCP call's entry.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct accept_call);
} st_accept_calls SEC(".maps");

/* When each not-yet-accepted child socket became ESTABLISHED, by sock address.
 * LRU: a child that is never accepted (listener closed) is evicted, not leaked. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} st_established SEC(".maps");

/* A TCP endpoint as the peer of an accepted socket sees it: IPv4 as ::ffff:a.b.c.d,
 * so that a v4 client of a dual-stack listener matches. */
struct client_key {
	__u8 addr[16];
	__u16 port;
	__u16 _pad[3];
};

/*
 * Client sockets of this host, in any network namespace, that completed a connect().
 * An accepted connection whose peer endpoint is in here came from this host: from
 * another pod or process on the node (peer "local"), whatever device it arrived on.
 * The receiving device cannot say so: a pod's traffic from the node and from
 * elsewhere both arrive on its veth. LRU: most clients connect to other hosts.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct client_key);
	__type(value, __u8);
} st_local_clients SEC(".maps");

static __always_inline void client_key_of(struct client_key *key, __u16 family, const __u8 *addr, __u16 port)
{
	if (family == AF_INET) {
		key->addr[10] = 0xff;
		key->addr[11] = 0xff;
		__builtin_memcpy(&key->addr[12], addr, 4);
	} else {
		__builtin_memcpy(key->addr, addr, 16);
	}
	key->port = port;
}

/*
 * current->files->fdt->fd[fd]->private_data->sk, or NULL when fd is not a socket.
 * A socket file's private_data is its struct socket (sock_alloc_file(),
 * net/socket.c); the inode mode check keeps other files out.
 */
static __always_inline struct sock *sock_of_fd(long fd)
{
	struct file *file = st_file_at(st_fdtable(), fd);
	struct socket *sock;
	umode_t mode;

	if (!file)
		return NULL;
	mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	return BPF_CORE_READ(sock, sk);
}

static __always_inline void accept_enter(long listen_fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct accept_call call = {};
	struct sock *sk = sock_of_fd(listen_fd);
	__u16 family = sk ? BPF_CORE_READ(sk, __sk_common.skc_family) : 0;
	/*
	 * int, not long: the verifier turns this helper call into a direct call of the map's
	 * update op, which returned int until 6.4 (commit d7ba4cc900bf, "bpf: return long from
	 * bpf_map_ops funcs"), so before then -EEXIST arrives zero-extended (0xffffffef) and a
	 * 64-bit compare never matches it. Compared as int it matches on every kernel.
	 */
	int err;

	/* Only TCP/IP listeners make records: accept on a UNIX socket has no port to report. */
	if (family == AF_INET || family == AF_INET6) {
		st_mark_acceptor(id >> 32);
		/* The queue this call is about to take from, as `ss -lnt` would show it now. */
		st_listen_seen(sk, 0);
		call.inet = 1;
		call.listener = (__u64)sk;
		call.lport = BPF_CORE_READ(sk, __sk_common.skc_num);
		call.enter_ns = bpf_ktime_get_ns();
	}
	/* BPF_NOEXIST: one map write on the common path, and a left-over entry is seen. */
	err = bpf_map_update_elem(&st_accept_calls, &id, &call, BPF_NOEXIST);
	if (err == -EEXIST) {
		st_count(ST_COUNTER_RETURN_MISSED);
		err = bpf_map_update_elem(&st_accept_calls, &id, &call, BPF_ANY);
	}
	if (err)
		st_count(ST_COUNTER_PENDING_FULL);
}

static __always_inline void fill_peer(struct st_accept_record *rec, struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct client_key client = {};
	__u64 *established;

	rec->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	rec->peer_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (rec->family == AF_INET)
		/* Through a __u32 pointer: the macro reads sizeof(*dst) bytes. */
		BPF_CORE_READ_INTO((__u32 *)rec->peer_addr, sk, __sk_common.skc_daddr);
	else
		BPF_CORE_READ_INTO(&rec->peer_addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);

	client_key_of(&client, rec->family, rec->peer_addr, rec->peer_port);
	if (bpf_map_lookup_elem(&st_local_clients, &client)) {
		rec->peer_local = 1;
		bpf_map_delete_elem(&st_local_clients, &client);
	}

	established = bpf_map_lookup_elem(&st_established, &key);
	if (established) {
		rec->established_ns = *established;
		bpf_map_delete_elem(&st_established, &key);
	}
}

static __always_inline void accept_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct accept_call *call = bpf_map_lookup_elem(&st_accept_calls, &id);
	__u64 now = bpf_ktime_get_ns();
	struct st_accept_record *rec;
	__u64 closed_ns = 0;
	struct sock *sk;

	if (!call) {
		/* The call began before the programs were attached, or its entry was evicted
		 * from the full LRU map. */
		st_count(ST_COUNTER_NO_ENTRY);
		return;
	}
	if (!call->inet)
		goto out;
	if (ret >= 0) {
		closed_ns = st_fd_closed_by_other(ret);
		st_listen_accepted(call->listener);
	}
	rec = st_reserve(sizeof(*rec));
	if (!rec)
		goto out;
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->hdr.type = ST_RECORD_ACCEPT;
	rec->hdr.size = sizeof(*rec);
	rec->pid = id >> 32;
	rec->tid = (__u32)id;
	rec->ret = ret;
	rec->lport = call->lport;
	rec->enter_ns = call->enter_ns;
	rec->exit_ns = now;
	rec->cgroup_id = bpf_get_current_cgroup_id();
	rec->fd_closed_ns = closed_ns;
	st_process_comm(rec->comm);
	if (ret >= 0) {
		/* Without an inet_csk_accept hook (tracepoint mode) the fd table says which
		 * sock was accepted: fd_install() has run by the time accept returns. */
		sk = call->sk ? (struct sock *)call->sk : sock_of_fd(ret);
		if (sk)
			fill_peer(rec, sk);
	}
	st_submit(rec);
out:
	bpf_map_delete_elem(&st_accept_calls, &id);
}

static __always_inline void accept_sock(struct sock *sk)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct accept_call *call = bpf_map_lookup_elem(&st_accept_calls, &id);

	if (call && sk)
		call->sk = (__u64)sk;
}

/*
 * An active open reaches ESTABLISHED when the SYN-ACK arrives (tcp_finish_connect(),
 * net/ipv4/tcp_input.c), before it sends the ACK that lets the other end accept, so a
 * local client is always recorded before its connection is accepted. Not at SYN_SENT:
 * tcp_v4_connect() sets that state before inet_hash_connect() picks the source port.
 */
static __always_inline void client_established(const struct sock *sk)
{
	struct client_key key = {};
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u8 addr[16] = {};
	__u8 one = 1;

	if (family == AF_INET)
		BPF_CORE_READ_INTO((__u32 *)addr, sk, __sk_common.skc_rcv_saddr);
	else if (family == AF_INET6)
		BPF_CORE_READ_INTO(&addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	else
		return;
	client_key_of(&key, family, addr, BPF_CORE_READ(sk, __sk_common.skc_num));
	bpf_map_update_elem(&st_local_clients, &key, &one, BPF_ANY);
}

/*
 * A passive-open child is created in SYN_RECV and moves to ESTABLISHED when the
 * handshake's final ACK is processed (tcp_rcv_state_process(), net/ipv4/tcp_input.c),
 * just before it is queued for accept. Active opens go SYN_SENT -> ESTABLISHED and
 * are not stamped.
 */
static __always_inline void sock_state_change(const struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	__u64 now;

	if (oldstate == TCP_SYN_SENT && newstate == TCP_ESTABLISHED)
		client_established(sk);
	if (oldstate == TCP_LISTEN && newstate == TCP_CLOSE)
		st_listen_forget(sk);
	if (newstate == TCP_LISTEN)
		st_listen_started((struct sock *)sk);
	/*
	 * A child that dies in the accept queue (reset, or its listener closed:
	 * inet_csk_listen_stop() -> tcp_disconnect()) goes to CLOSE from the only states a
	 * queued child can be in. Its stamp goes with it: the sock's memory is reused, and a
	 * later socket at this address must not read it. An accepted socket's stamp was
	 * taken at accept; its ordinary close passes FIN_WAIT or LAST_ACK and costs nothing here.
	 */
	if (newstate == TCP_CLOSE && (oldstate == TCP_ESTABLISHED || oldstate == TCP_CLOSE_WAIT)) {
		bpf_map_delete_elem(&st_established, &key);
		return;
	}
	if (oldstate != TCP_SYN_RECV || newstate != TCP_ESTABLISHED)
		return;
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&st_established, &key, &now, BPF_ANY);
}

/* ---- hook "accept": the accept()/accept4() call ---- */

/* __sys_accept4() serves both accept() and accept4() (net/socket.c). */
SEC("fentry/__sys_accept4")
int BPF_PROG(st_fe_sys_accept4, int fd)
{
	accept_enter(fd);
	return 0;
}

SEC("fexit/__sys_accept4")
int BPF_PROG(st_fx_sys_accept4)
{
	__u64 ret = 0;

	bpf_get_func_ret(ctx, &ret);
	accept_exit((int)ret);
	return 0;
}

/* inet_csk_accept()'s arguments changed in 6.10 (struct proto_accept_arg);
 * bpf_get_func_ret() reads the return value whatever their number. */
SEC("fexit/inet_csk_accept")
int BPF_PROG(st_fx_inet_csk_accept)
{
	__u64 ret = 0;

	bpf_get_func_ret(ctx, &ret);
	accept_sock((struct sock *)ret);
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

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(st_krp_inet_csk_accept, struct sock *sk)
{
	accept_sock(sk);
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

/* ---- hook "sock_established": a child socket entering the accept queue, and a
 * client socket of this host completing its connect ---- */

/* tcp_set_state() is where every TCP state change happens (net/ipv4/tcp.c); the old
 * state is still in sk_state on entry. */
SEC("fentry/tcp_set_state")
int BPF_PROG(st_fe_tcp_set_state, struct sock *sk, int state)
{
	sock_state_change(sk, BPF_CORE_READ(sk, __sk_common.skc_state), state);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(st_tp_btf_inet_sock_set_state, const struct sock *sk, int oldstate, int newstate)
{
	sock_state_change(sk, oldstate, newstate);
	return 0;
}
