using SockTrace.Agent.Events;

namespace SockTrace.Agent.Bpf;

/// <summary>A libbpf call failed. Carries the call, errno, and what libbpf logged while it ran
/// (for a load failure that includes the verifier's log).</summary>
public sealed class BpfException : Exception
{
    public BpfException(string call, int errno, string detail, string? libbpfLog = null)
        : base(Format(call, errno, detail))
    {
        Call = call;
        Errno = errno;
        LibbpfLog = libbpfLog;
    }

    public string Call { get; }

    /// <summary>Positive errno value.</summary>
    public int Errno { get; }

    /// <summary>libbpf's own messages for the failed call, verifier log included; null when none.</summary>
    public string? LibbpfLog { get; }

    private static string Format(string call, int errno, string detail) =>
        $"{call} failed: {ErrnoNames.Describe(errno)}{(detail.Length > 0 ? " (" + detail + ")" : "")}";
}
