namespace SockTrace.Reference;

/// <summary>CLOCK_MONOTONIC for the model: it moves only when a scenario waits.</summary>
public sealed class VirtualClock(ulong startNs)
{
    public ulong NowNs { get; private set; } = startNs;

    public void Advance(TimeSpan by) => NowNs += (ulong)(by.Ticks * 100);

    /// <summary>Jumps to a time measured elsewhere; a monotonic clock never goes back.</summary>
    public void MoveTo(ulong ns) => NowNs = Math.Max(NowNs, ns);
}
