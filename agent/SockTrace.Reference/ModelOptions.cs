namespace SockTrace.Reference;

/// <summary>The process the model plays, and the host around it.</summary>
public sealed record ModelOptions
{
    public uint Pid { get; init; } = 4242;
    /// <summary>The process name the records carry (the `comm` label).</summary>
    public string Comm { get; init; } = "st-scenario";
    /// <summary>Where the virtual CLOCK_MONOTONIC starts.</summary>
    public ulong StartNs { get; init; } = 1_000_000_000;
    /// <summary>RLIMIT_NOFILE, when the scenario does not set one.</summary>
    public int Nofile { get; init; } = 1024;
    /// <summary>fds open before the first step: stdin, stdout, stderr.</summary>
    public int InheritedFds { get; init; } = 3;
    /// <summary>The host's own non-loopback address: the peer of a connection made "via nic".</summary>
    public byte[] NicAddress { get; init; } = [192, 0, 2, 2];
    /// <summary>Listening ports are assigned from here, in listen order, unless a step names one.</summary>
    public ushort BasePort { get; init; } = 18080;
    /// <summary>The agent's --double-close-window-ms: an EBADF close this soon after another thread's close is a race.</summary>
    public TimeSpan DoubleCloseWindow { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>
    /// Replay: the CLOCK_MONOTONIC time at which each step (by index) started when the scenario
    /// ran somewhere real. The clock jumps there before the step, and waits add nothing, so the
    /// model's times are the real run's, scheduling delays included.
    /// </summary>
    public IReadOnlyDictionary<int, ulong>? StepTimesNs { get; init; }
}
