namespace SockTrace.Agent.Events;

/// <summary>Turns the kernel's CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns()) into wall-clock time.</summary>
public static class MonotonicClock
{
    // Stopwatch is CLOCK_MONOTONIC on Linux (in ns: Frequency is 1e9, so the conversion to
    // 100 ns ticks must divide, not multiply by TicksPerSecond / Frequency, which is 0).
    // Sampled together with the wall clock once, it gives the offset between the two.
    private static readonly long WallMinusMonotonicTicks =
        DateTime.UtcNow.Ticks - (long)((Int128)System.Diagnostics.Stopwatch.GetTimestamp() * TimeSpan.TicksPerSecond / System.Diagnostics.Stopwatch.Frequency);

    /// <summary>Now, on the clock bpf_ktime_get_ns() reads.</summary>
    public static ulong NowNs() => (ulong)((Int128)System.Diagnostics.Stopwatch.GetTimestamp() * 1_000_000_000 / System.Diagnostics.Stopwatch.Frequency);

    public static DateTime ToUtc(ulong monotonicNs) => new((long)(monotonicNs / 100) + WallMinusMonotonicTicks, DateTimeKind.Utc);
}
