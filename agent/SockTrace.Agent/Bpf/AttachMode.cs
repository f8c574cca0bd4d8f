namespace SockTrace.Agent.Bpf;

/// <summary>How a hook is attached, in the order the agent prefers them: fentry/fexit
/// (a BPF trampoline, cheapest), kprobe/kretprobe (an int3 or ftrace detour), tracepoint
/// (stable but coarser, and for syscalls a cost on every syscall of every task).</summary>
public enum AttachMode
{
    Fentry,
    Kprobe,
    Tracepoint,
}

public static class AttachModes
{
    public static readonly AttachMode[] Preference = [AttachMode.Fentry, AttachMode.Kprobe, AttachMode.Tracepoint];

    public static string Name(this AttachMode mode) => mode switch
    {
        AttachMode.Fentry => "fentry",
        AttachMode.Kprobe => "kprobe",
        _ => "tracepoint",
    };
}
