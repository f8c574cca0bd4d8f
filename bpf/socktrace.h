/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one ABI between the BPF programs and the agent: every record and key that
 * crosses from kernel to user space. Fixed-width fields, explicit padding, no
 * bool, enum or pointer fields, no kernel types. The C# twins live in
 * agent/SockTrace.Agent/Events/Records.cs and a test checks sizes and offsets.
 */
#ifndef SOCKTRACE_H
#define SOCKTRACE_H

#define ST_COMM_LEN 16

/* st_record_header.type */
#define ST_RECORD_ACCEPT 1
#define ST_RECORD_FD_RACE 2
#define ST_RECORD_ESTABLISHED 3  /* a passive open's child became ESTABLISHED in its accept queue */
#define ST_RECORD_CLIENT 4       /* a client socket of this host completed its connect() */
#define ST_RECORD_TYPE_COUNT 5

/* st_fd_race_record.kind */
#define ST_RACE_DUP2_BUSY 1          /* dup2/dup3 onto a reserved, not yet installed fd: EBUSY */
#define ST_RACE_INSTALL_OVERWRITE 2  /* fd_install() onto a slot that already holds a file */
#define ST_RACE_DOUBLE_CLOSE 3       /* close() of an fd another thread of the process just closed: EBADF */

/* Slots of the per-CPU counter array st_counters. */
#define ST_COUNTER_RINGBUF_DROPS 0  /* bpf_ringbuf_reserve failed: record lost */
#define ST_COUNTER_PENDING_FULL 1   /* in-flight map update failed: call not traced */
#define ST_COUNTER_PRODUCED 2       /* every reserve attempt: produced = delivered + dropped */
#define ST_COUNTER_NO_ENTRY 3       /* an accept returned and found no in-flight entry: not traced */
#define ST_COUNTER_RETURN_MISSED 4  /* an accept began while its thread's previous call still had
				     * its entry: that call's return was never seen */
#define ST_COUNTER_ERRORS_LOST 5    /* a failed accept found st_accept_errors full: not counted */
#define ST_COUNTER_URING_FIXED 6    /* an io_uring accept on or into the ring's fixed files: not traced */
#define ST_COUNTER_COUNT 7

/* Every record starts with this header. */
struct st_record_header {
	__u32 type;
	__u32 size; /* of the whole record, header included */
};

/*
 * One successful accept()/accept4() call, reported at its return. Failed calls are only
 * counted (st_accept_errors). The kernel leaves established_ns and peer_local 0: the agent
 * joins them from the ESTABLISHED record of sk and the CLIENT record of the peer, which
 * the kernel wrote before this one (the reference model writes them itself).
 */
struct st_accept_record {
	struct st_record_header hdr;
	__u32 pid;            /* tgid */
	__u32 tid;
	__s32 ret;            /* new fd, or -errno (the reference model's failed calls) */
	__u16 lport;          /* listening port, host byte order; 0 when unknown */
	__u16 family;         /* AF_INET or AF_INET6 of the accepted socket; 0 on error */
	__u64 enter_ns;       /* CLOCK_MONOTONIC at syscall entry */
	__u64 exit_ns;        /* CLOCK_MONOTONIC at syscall return */
	__u64 established_ns; /* child reached ESTABLISHED; 0 when not seen */
	__u64 cgroup_id;
	__u8 peer_addr[16];   /* IPv4 in the first 4 bytes, or IPv6, network order */
	__u16 peer_port;      /* host byte order; never a metric label */
	__u16 peer_local;     /* 1: the connecting socket is on this host (any network namespace) */
	__u32 netns;          /* inode number of the listener's network namespace */
	char comm[ST_COMM_LEN];
	__u64 fd_closed_ns;   /* when another thread of the process last closed the fd number
			       * accept returned (CLOCK_MONOTONIC); 0 when none did */
	__u64 listener;       /* the listening sock's address: an identity, never a label */
	__u64 sk;             /* the accepted sock's address, to join its ESTABLISHED record */
	__u32 queue_depth;    /* the listener's accept queue after this accept (sk_ack_backlog) */
	__u32 queue_limit;    /* its backlog (sk_max_ack_backlog) */
	__u32 syn_queue;      /* its SYN queue (icsk_accept_queue.qlen) */
	__u32 _pad0;
};

/* A passive open's child became ESTABLISHED: from now on it waits in the accept queue. */
struct st_established_record {
	struct st_record_header hdr;
	__u64 sk;             /* the child sock's address */
	__u64 ns;             /* CLOCK_MONOTONIC */
	__u8 peer_addr[16];   /* the client's address, as st_accept_record.peer_addr */
	__u16 peer_port;      /* host byte order */
	__u16 family;
	__u32 _pad0;
};

/* A client socket of this host, in any network namespace, completed its connect(): an
 * accepted connection from this endpoint is from this host (peer "local"). Not written
 * for connections to a loopback address, or routed out of a NIC. */
struct st_client_record {
	struct st_record_header hdr;
	__u8 addr[16];        /* the client's own address, as st_accept_record.peer_addr */
	__u16 port;           /* its port, host byte order */
	__u16 family;
	__u32 _pad0;
};

/* Key of the per-CPU map st_accept_errors: failed accepts, counted in the kernel, so that
 * no ring buffer can refuse them whatever their rate. The value is a __u64 count. */
struct st_accept_error_key {
	__u64 cgroup_id;
	__u16 lport;          /* host byte order; 0 when unknown */
	__u16 err;            /* the errno, positive */
	__u32 _pad0;
	char comm[ST_COMM_LEN];
};

/*
 * st_error_cache (bpf/accept.bpf.c): per CPU, ST_ACCEPT_ERROR_SLOTS keys counted
 * with a plain store, each in the slot it hashes to; a key whose slot another holds is
 * counted in st_accept_errors instead. A slot stays with its first key: its count only
 * grows, and the agent never writes it. The key is written before the count, so a slot
 * with a count has its key (the agent reads a slot it has not seen with that key twice).
 */
#define ST_ACCEPT_ERROR_SLOTS 256

struct st_accept_error_slot {
	struct st_accept_error_key key;
	__u64 count;          /* 0: free */
};

/* An fd race, reported when it happens. */
struct st_fd_race_record {
	struct st_record_header hdr;
	__u32 pid;
	__u32 tid;
	__s32 fd;
	__u32 kind;           /* ST_RACE_* */
	__u64 ts_ns;          /* CLOCK_MONOTONIC */
	__u64 cgroup_id;
	__u64 gap_ns;         /* double_close: time since the other thread's close */
	__u32 other_tid;      /* double_close: the thread that closed the fd first */
	__u32 _pad0;
	char comm[ST_COMM_LEN];
};

/* st_rx_value.path: how a device hands packets to the stack. */
#define ST_RX_PATH_LOOPBACK 1  /* IFF_LOOPBACK */
#define ST_RX_PATH_NIC 2       /* a driver bound to a bus device (dev->dev.parent) */
#define ST_RX_PATH_VIRTUAL 3   /* veth, bridge, tun and other software devices */

#define ST_IFNAME_LEN 16

/*
 * st_listen (bpf/listen.bpf.h): one listening socket, keyed by its struct sock address
 * (a __u64), so that the members of a SO_REUSEPORT group, and listeners on two addresses
 * of one port, each have their own entry. The kernel reuses the address only after the
 * listener's LISTEN -> CLOSE, which removes the entry.
 */
struct st_listen_value {
	__u64 overflows;      /* connections refused because the accept queue was full */
	__u64 syn_drops;      /* SYNs dropped because the SYN (request) queue was full */
	__u64 cookies;        /* SYNs answered with a SYN cookie */
	__u64 queues_ns;      /* CLOCK_MONOTONIC when depth, limit and syn_queue were written; the
	                       * agent takes the later of these and an accept record's */
	__u64 drops_seen;     /* BPF only: the listener's sk_drops when last looked at */
	__u64 seen_ns;        /* CLOCK_MONOTONIC when first seen (at listen(), when traced then) */
	__u8 addr[16];        /* bound address: IPv4 in the first 4 bytes, or IPv6 */
	__u32 netns;          /* inode number of the listener's network namespace */
	__u16 port;           /* host byte order */
	__u16 family;         /* AF_INET or AF_INET6 */
	__u32 depth;          /* accept-queue length (sk_ack_backlog) when last looked at */
	__u32 limit;          /* the backlog listen() set (sk_max_ack_backlog) */
	__u32 syn_queue;      /* request-queue length (icsk_accept_queue.qlen) when last looked at
	                       * (in tracepoint mode, at each SYN: how a cookie is told) */
	__u32 _pad0;
};

/* A device as the receive counters key it: ifindex alone repeats in every network namespace. */
struct st_rx_key {
	__u32 netns;          /* inode number of the device's network namespace */
	__u32 ifindex;
};

/*
 * st_rx_cache (bpf/rx.bpf.c): per CPU, ST_RX_CACHE_SLOTS devices counted with plain
 * stores, each in the slot its key hashes to (st_rx_slot_of()); a device whose slot
 * another device holds is counted in the per-CPU hash st_rx_devices instead, keyed by
 * st_rx_key with a st_rx_count value. A slot stays with its first device.
 */
#define ST_RX_CACHE_SLOTS 256

struct st_rx_slot {
	struct st_rx_key key; /* ifindex 0: free */
	__u64 packets;
	__u64 bytes;          /* skb->len at the hand-off: IP header onwards */
};

struct st_rx_count {
	__u64 packets;
	__u64 bytes;
};

/* st_rx_names, by st_rx_key: each device's name and path, written when it is first seen. */
struct st_rx_name {
	__u32 path;           /* ST_RX_PATH_* */
	__u32 _pad0;
	char name[ST_IFNAME_LEN];
};

/* Key of the per-CPU map st_delivery (bpf/delivery.bpf.c): bytes queued in order on TCP
 * sockets, by the socket's network namespace and the path the skb last entered a stack on. */
struct st_delivery_key {
	__u32 netns;          /* inode number of the socket's network namespace */
	__u32 path;           /* ST_RX_PATH_*, 0 when the receive queue had no skb to tell */
};

struct st_delivery_value {
	__u64 bytes;          /* payload bytes, each once, as rcv_nxt passed them */
	__u64 segments;       /* data segments received (tcp_info's data_segs_in) */
};

/* Value of the per-CPU map st_delivery_latency, keyed by st_delivery_key: sampled times
 * from an skb's hand-off to the stack to its queueing on the socket. Bucket i counts the
 * samples at most the agent's i-th latency bound (1 us ... 60 s, Metrics/SockTraceMeter.cs);
 * the last counts the rest. */
#define ST_LATENCY_BOUNDS 24

struct st_delivery_latency {
	__u64 buckets[ST_LATENCY_BOUNDS + 1];
	__u64 sum_ns;
};

/* Key of the per-CPU map st_local_pairs: loopback bytes between two sockets of one
 * network namespace, by the listener's port and the connecting process. */
struct st_local_pair_key {
	__u32 netns;
	__u16 port;           /* the listener's port, host byte order */
	__u16 _pad;
	char comm[ST_COMM_LEN]; /* the connecting (client) process */
};

/* st_config.flags: what the kernel offers and what the agent attached. Constants to the
 * verifier (.rodata is frozen at load), so it removes the branches a kernel cannot take
 * before it looks at their helpers. */
#define ST_CFG_CASTS 1          /* bpf_rdonly_cast (6.2): kernel memory read by plain loads */
#define ST_CFG_TASK_STORAGE 2   /* BPF_MAP_TYPE_TASK_STORAGE (5.11): per-thread, per-process state */
#define ST_CFG_DELIVERY 4       /* the delivery hook is attached: the state and receive programs do its parts */
#define ST_CFG_RX_DEVICES 8     /* the rx hook is attached: the receive program counts devices */

/* Set between open and load through the object's .rodata (the only global there). */
struct st_config {
	__u64 wakeup_bytes;     /* wake the reader only once this much data is pending */
	__u64 double_close_window_ns; /* an EBADF close this soon after another thread's close is a race */
	__u32 flags;            /* ST_CFG_* */
	__u32 self_tgid;        /* the agent's pid: its own calls prove the hooks fire (st_self_seen) */
};

/* Slots of the per-CPU array st_self_seen: calls of the agent's own that each hook saw, at
 * its start-up self-test (Bpf/HookSelfTest.cs). */
#define ST_SELF_ACCEPT 0   /* an accept's return, its entry seen */
#define ST_SELF_DUP 1      /* a dup2() or dup3() return */
#define ST_SELF_CLOSE 2    /* a close() */
#define ST_SELF_COUNT 3

#endif /* SOCKTRACE_H */
