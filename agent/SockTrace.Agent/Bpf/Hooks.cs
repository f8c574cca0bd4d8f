namespace SockTrace.Agent.Bpf;

/// <summary>What a program needs of the kernel beyond its attach point, probed at start-up
/// (<see cref="KernelFeatures"/>): a mode whose programs need what the kernel lacks is not offered.</summary>
[Flags]
public enum KernelNeeds
{
    None = 0,
    /// <summary>Task and socket storage for tracing programs (5.11).</summary>
    LocalStorage = 1,
    /// <summary>bpf_task_pt_regs() (5.15).</summary>
    TaskPtRegs = 2,
}

/// <summary>One BPF program of a hook. <see cref="KernelFunction"/> is the function a kprobe or
/// fentry program needs; <see cref="Tracepoint"/> the tracefs event a tracepoint program needs.
/// <see cref="BlockingReturn"/> marks a kretprobe on a function that sleeps (accept), which
/// needs a large maxactive (see <see cref="KprobeEvents"/>). An <see cref="Optional"/> program
/// is attached where its function or tracepoint exists: its mode needs at least one program, not all.
/// A <see cref="Return"/> program ends what an entry program began; it is attached first, so
/// that no call the entry program sees can return unseen while the hook is being attached.
/// A program with <see cref="When"/> is one of the hook's only where that kernel function
/// exists, with <see cref="Unless"/> only where it does not: how a kernel's shape is told.</summary>
public sealed record HookProgram(string Name, string? KernelFunction = null, string? Tracepoint = null, bool BlockingReturn = false, bool Optional = false,
    KernelNeeds Needs = KernelNeeds.None, bool Return = false, string? When = null, string? Unless = null);

/// <summary>A logical hook: the same record computed by different programs in each attach mode.
/// An optional hook that no mode supports is left out instead of stopping the agent. With
/// <see cref="LoadProbe"/> its tracepoint programs are offered only where they load: they need
/// tracepoint arguments or kernel enum values that older kernels lack.</summary>
public sealed record Hook(string Name, IReadOnlyDictionary<AttachMode, HookProgram[]> Programs, bool Required = true, bool LoadProbe = false);

/// <summary>Every hook the agent attaches, and its programs per mode (see bpf/*.bpf.c; all are
/// built into the one object bpf/.output/socktrace.bpf.o). Program names say how each one
/// attaches: st_fe_ fentry, st_fx_ fexit, st_kp_ kprobe, st_krp_ kretprobe, st_tp_ a
/// tracepoint, st_tp_btf_ a BTF tracepoint.</summary>
public static class Hooks
{
    /// <summary>Where do_accept() exists (5.15 on), io_uring accepts through it and the
    /// syscall programs are on __sys_accept4(), with <see cref="AcceptIoUring"/> beside them;
    /// before, both paths meet in __sys_accept4_file(), hooked instead (bpf/accept.bpf.c).</summary>
    public static readonly Hook Accept = new("accept", new Dictionary<AttachMode, HookProgram[]>
    {
        [AttachMode.Fentry] =
        [
            new("st_fe_sys_accept4", "__sys_accept4", When: DoAccept),
            new("st_fx_sys_accept4", "__sys_accept4", Return: true, When: DoAccept),
            new("st_fe_sys_accept4_file", "__sys_accept4_file", Unless: DoAccept),
            new("st_fx_sys_accept4_file", "__sys_accept4_file", Return: true, Unless: DoAccept),
        ],
        [AttachMode.Kprobe] =
        [
            new("st_kp_sys_accept4", "__sys_accept4", When: DoAccept),
            new("st_krp_sys_accept4", "__sys_accept4", BlockingReturn: true, Return: true, When: DoAccept),
            new("st_kp_sys_accept4_file", "__sys_accept4_file", Unless: DoAccept),
            new("st_krp_sys_accept4_file", "__sys_accept4_file", BlockingReturn: true, Return: true, Unless: DoAccept),
        ],
        [AttachMode.Tracepoint] =
        [
            new("st_tp_enter_accept4", Tracepoint: "syscalls/sys_enter_accept4"),
            new("st_tp_exit_accept4", Tracepoint: "syscalls/sys_exit_accept4", Return: true),
            new("st_tp_enter_accept", Tracepoint: "syscalls/sys_enter_accept"),
            new("st_tp_exit_accept", Tracepoint: "syscalls/sys_exit_accept", Return: true),
        ],
    });

    /// <summary>Every TCP state change, one program for every feature that needs them
    /// (bpf/state.bpf.c): the records the agent joins to accepts (queue wait, local peers),
    /// listeners starting and closing, and the delivery hook's clients. No kprobe programs here
    /// or on <see cref="Rx"/>: both run mostly in softirq, and a kprobe program that runs in a
    /// softirq which interrupted another kprobe program on its CPU is skipped (trace_call_bpf()
    /// in kernel/trace/bpf_trace.c, bpf_prog_active), so the record or the packet would be lost.
    /// fentry and tp_btf programs guard recursion per program, and tp_btf exists wherever the
    /// agent runs (it needs BTF).</summary>
    /// <summary>The kernel function that tells the shape of the accept path.</summary>
    public const string DoAccept = "do_accept";

    /// <summary>io_uring's IORING_OP_ACCEPT where it does not pass through
    /// <see cref="Accept"/>'s programs: the io_uring tracepoints, in every mode (stable where
    /// do_accept() is not: its arguments changed in 6.10), with the submitted request
    /// (io_uring_submit_req, io_uring_submit_sqe before 5.19). Where __sys_accept4_file()
    /// carries io_uring's accepts too, it is not needed.</summary>
    public static readonly Hook AcceptIoUring = new("accept_io_uring", new Dictionary<AttachMode, HookProgram[]>
    {
        [AttachMode.Tracepoint] =
        [
            new("st_tp_io_uring_complete", Tracepoint: "io_uring/io_uring_complete", Return: true),
            // Named io_uring_submit_sqe before 5.19 (Debian's 5.10 has 5.15's io_uring).
            new("st_tp_io_uring_submit_req", Tracepoint: "io_uring/io_uring_submit_req", Optional: true),
            new("st_tp_io_uring_submit_sqe", Tracepoint: "io_uring/io_uring_submit_sqe", Optional: true),
        ],
    }, Required: false, LoadProbe: true);

    public static readonly Hook SockEstablished = new("sock_established", new Dictionary<AttachMode, HookProgram[]>
    {
        [AttachMode.Fentry] = [new("st_fe_tcp_set_state", "tcp_set_state")],
        [AttachMode.Tracepoint] = [new("st_tp_btf_inet_sock_set_state", Tracepoint: "sock/inet_sock_set_state")],
    });

    public static readonly Hook Dup = new("dup", new Dictionary<AttachMode, HookProgram[]>
    {
        [AttachMode.Fentry] = [new("st_fx_do_dup2", "do_dup2")],
        [AttachMode.Kprobe] = [new("st_kp_do_dup2", "do_dup2"), new("st_krp_do_dup2", "do_dup2", Return: true)],
        // Returns only: an EBUSY one reads its target from the syscall's saved registers. arm64
        // has no dup2 syscall (glibc's dup2() is dup3()).
        [AttachMode.Tracepoint] =
        [
            new("st_tp_exit_dup2", Tracepoint: "syscalls/sys_exit_dup2", Needs: KernelNeeds.TaskPtRegs, Optional: true),
            new("st_tp_exit_dup3", Tracepoint: "syscalls/sys_exit_dup3", Needs: KernelNeeds.TaskPtRegs),
        ],
    });

    /// <summary>No tracepoint exists in fd_install(): without kprobes or fentry,
    /// install_overwrite is not observed (and socktrace_probe_info says so).</summary>
    public static readonly Hook FdInstall = new("fd_install", new Dictionary<AttachMode, HookProgram[]>
    {
        [AttachMode.Fentry] = [new("st_fe_fd_install", "fd_install")],
        [AttachMode.Kprobe] = [new("st_kp_fd_install", "fd_install")],
    }, Required: false);

    /// <summary>close() ends in close_fd() until 6.10 and in file_close_fd() from 6.11, where
    /// close_fd() stays for other callers (bpf/fdrace.bpf.c): each function's program attaches
    /// where it exists. Entry only: the slot's content says how the close will end.</summary>
    public static readonly Hook Close = new("close", new Dictionary<AttachMode, HookProgram[]>
    {
        [AttachMode.Fentry] =
        [
            new("st_fe_close_fd", "close_fd", Optional: true),
            new("st_fe_file_close_fd", "file_close_fd", Optional: true),
        ],
        [AttachMode.Kprobe] =
        [
            new("st_kp_close_fd", "close_fd", Optional: true),
            new("st_kp_file_close_fd", "file_close_fd", Optional: true),
        ],
        [AttachMode.Tracepoint] = [new("st_tp_enter_close", Tracepoint: "syscalls/sys_enter_close")],
    });

    /// <summary>Every skb handed to the protocol stack (bpf/rx.bpf.c says why these functions):
    /// per-device counts, and the delivery hook's latency stamps. Off with --rx-metrics off.</summary>
    public static readonly Hook Rx = new("rx", new Dictionary<AttachMode, HookProgram[]>
    {
        [AttachMode.Fentry] =
        [
            new("st_fe_netif_receive_skb_one_core", "__netif_receive_skb_one_core"),
            new("st_fe_netif_receive_skb_list_core", "__netif_receive_skb_list_core"),
        ],
        [AttachMode.Tracepoint] = [new("st_tp_btf_netif_receive_skb", Tracepoint: "net/netif_receive_skb")],
    });

    /// <summary>Connections refused for a full accept queue, and SYNs dropped for a full SYN queue
    /// (bpf/listen.bpf.c says why these functions and tracepoints). No fentry: on 6.1 it cannot
    /// attach to the syn_recv_sock functions. The tracepoint programs need skb:kfree_skb's
    /// TCP_LISTEN_OVERFLOW reason and rx_sk argument (6.15 on), so they are tried by loading
    /// them; where neither kprobes nor they work, the hook is left out and the queue depth still
    /// comes from the accept hook.</summary>
    public static readonly Hook ListenOverflow = new("listen_overflow", new Dictionary<AttachMode, HookProgram[]>
    {
        [AttachMode.Kprobe] =
        [
            new("st_kp_tcp_conn_request", "tcp_conn_request"),
            new("st_kp_tcp_v4_syn_recv_sock", "tcp_v4_syn_recv_sock"),
            new("st_kp_tcp_v6_syn_recv_sock", "tcp_v6_syn_recv_sock"),
            new("st_kp_inet_csk_listen_start", "inet_csk_listen_start"),
        ],
        [AttachMode.Tracepoint] =
        [
            new("st_tp_btf_kfree_skb", Tracepoint: "skb/kfree_skb"),
            new("st_tp_btf_consume_skb", Tracepoint: "skb/consume_skb"),
        ],
    }, Required: false, LoadProbe: true);

    /// <summary>Bytes queued in order on TCP sockets (bpf/delivery.bpf.c says why these
    /// functions); who each client is comes from <see cref="SockEstablished"/>'s program, and
    /// the latency stamps from <see cref="Rx"/>'s. No kprobe programs, for the reason
    /// <see cref="SockEstablished"/> gives; sock:sk_data_ready exists from 6.4 on, so on an
    /// older kernel without fentry the hook is left out. Socket storage for tracing programs is
    /// 5.11. Off with --rx-metrics off.</summary>
    public static readonly Hook Delivery = new("delivery", new Dictionary<AttachMode, HookProgram[]>
    {
        [AttachMode.Fentry] = [new("st_fe_tcp_data_ready", "tcp_data_ready", Needs: KernelNeeds.LocalStorage)],
        [AttachMode.Tracepoint] = [new("st_tp_btf_sk_data_ready", Tracepoint: "sock/sk_data_ready", Needs: KernelNeeds.LocalStorage)],
    }, Required: false);

    public static readonly IReadOnlyList<Hook> All = [Accept, AcceptIoUring, SockEstablished, Dup, FdInstall, Close, Rx, ListenOverflow, Delivery];
}
