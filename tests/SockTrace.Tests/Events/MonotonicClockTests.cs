using System.Runtime.InteropServices;
using SockTrace.Agent.Events;

namespace SockTrace.Tests.Events;

public sealed partial class MonotonicClockTests
{
    private const int ClockMonotonic = 1;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    /// <summary>A CLOCK_MONOTONIC reading taken now, as bpf_ktime_get_ns() would give it, is now
    /// on the wall clock: the time /races shows for a race is when it happened.</summary>
    [Fact]
    public void AKernelTimestampTakenNowIsNow()
    {
        Assert.Equal(0, clock_gettime(ClockMonotonic, out var ts));
        var converted = MonotonicClock.ToUtc((ulong)(ts.Seconds * 1_000_000_000 + ts.Nanoseconds));
        var now = DateTime.UtcNow;
        Assert.InRange((now - converted).Duration(), TimeSpan.Zero, TimeSpan.FromSeconds(1));
    }

    [LibraryImport("libc")]
    private static partial int clock_gettime(int clock, out Timespec ts);
}
