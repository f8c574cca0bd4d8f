namespace SockTrace.Agent.Events;

/// <summary>Turns the kernel's CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns()) into wall-clock time.</summary>
public static class MonotonicClock
{
    // Environment.TickCount64 is CLOCK_MONOTONIC in milliseconds on Linux; Stopwatch is
    // CLOCK_MONOTONIC in ns. Sampled together once, they give the offset to the wall clock.
    private static readonly long WallMinusMonotonicTicks =
        DateTime.UtcNow.Ticks - System.Diagnostics.Stopwatch.GetTimestamp() * (TimeSpan.TicksPerSecond / System.Diagnostics.Stopwatch.Frequency);

    public static DateTime ToUtc(ulong monotonicNs) => new((long)(monotonicNs / 100) + WallMinusMonotonicTicks, DateTimeKind.Utc);
}
