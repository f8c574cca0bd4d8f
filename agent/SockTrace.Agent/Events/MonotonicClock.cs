namespace SockTrace.Agent.Events;

/// <summary>Turns the kernel's CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns()) into wall-clock time.</summary>
public static class MonotonicClock
{
    /// <summary>Now, on the clock bpf_ktime_get_ns() reads: Stopwatch is CLOCK_MONOTONIC on
    /// Linux. In 128 bits, so the scaling neither overflows nor truncates a ratio to 0.</summary>
    public static ulong NowNs() => (ulong)((Int128)System.Diagnostics.Stopwatch.GetTimestamp() * 1_000_000_000 / System.Diagnostics.Stopwatch.Frequency);

    // Sampled together with the wall clock once, it gives the offset between the two.
    private static readonly long WallMinusMonotonicTicks = DateTime.UtcNow.Ticks - (long)(NowNs() / 100);

    public static DateTime ToUtc(ulong monotonicNs) => new((long)(monotonicNs / 100) + WallMinusMonotonicTicks, DateTimeKind.Utc);
}
