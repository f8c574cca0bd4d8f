namespace SockTrace.Agent.Bpf;

/// <summary>One BPF program of a hook. <see cref="KernelFunction"/> is the function a kprobe or
/// fentry program needs; <see cref="Tracepoint"/> the tracefs event a tracepoint program needs.</summary>
public sealed record HookProgram(string Name, string? KernelFunction = null, string? Tracepoint = null, bool IsKretprobe = false);

/// <summary>A logical hook: the same record computed by different programs in each attach mode.</summary>
public sealed record Hook(string Name, string Object, IReadOnlyDictionary<AttachMode, HookProgram[]> Programs);

/// <summary>Every hook the agent attaches, and its programs per mode (see bpf/*.bpf.c).</summary>
public static class Hooks
{
    public static readonly Hook Accept = new("accept", "accept", new Dictionary<AttachMode, HookProgram[]>
    {
        [AttachMode.Fentry] =
        [
            new("st_fe_sys_accept4", "__sys_accept4"),
            new("st_fx_sys_accept4", "__sys_accept4"),
            new("st_fx_inet_csk_accept", "inet_csk_accept"),
        ],
        [AttachMode.Kprobe] =
        [
            new("st_kp_sys_accept4", "__sys_accept4"),
            new("st_krp_sys_accept4", "__sys_accept4", IsKretprobe: true),
            new("st_krp_inet_csk_accept", "inet_csk_accept", IsKretprobe: true),
        ],
        [AttachMode.Tracepoint] =
        [
            new("st_tp_enter_accept4", Tracepoint: "syscalls/sys_enter_accept4"),
            new("st_tp_exit_accept4", Tracepoint: "syscalls/sys_exit_accept4"),
            new("st_tp_enter_accept", Tracepoint: "syscalls/sys_enter_accept"),
            new("st_tp_exit_accept", Tracepoint: "syscalls/sys_exit_accept"),
        ],
    });

    public static readonly Hook SockEstablished = new("sock_established", "accept", new Dictionary<AttachMode, HookProgram[]>
    {
        [AttachMode.Fentry] = [new("st_fe_tcp_set_state", "tcp_set_state")],
        [AttachMode.Kprobe] = [new("st_kp_tcp_set_state", "tcp_set_state")],
        [AttachMode.Tracepoint] = [new("st_tp_btf_inet_sock_set_state", Tracepoint: "sock/inet_sock_set_state")],
    });

    public static readonly IReadOnlyList<Hook> All = [Accept, SockEstablished];
}
