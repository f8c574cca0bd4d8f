using System.Runtime.InteropServices;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// socktrace_fd_reuse_gap_seconds{comm}: for each accept that returned an fd number another
/// thread of the same process had closed, the time from that close to accept's return. The
/// kernel hands out the lowest free fd, so on a thread-pool server this is routine and not a
/// race: it is how long a stale copy of the number in the closing thread would have named a
/// closed descriptor before it named the new connection. One histogram per process name, at
/// most <c>maxPerMetric</c> of them (then comm="other"), dropped after the idle time like the
/// accept series. Not thread-safe: <see cref="AcceptMetrics"/> locks.
/// </summary>
internal sealed class FdReuseGaps(int maxPerMetric, ulong idleNs)
{
    public const string Name = "socktrace_fd_reuse_gap_seconds";
    public const string Help = "Time from close() of an fd by one thread to accept() returning the same fd number to another thread of the same process (the kernel reuses the lowest free fd). Not a race: the window in which a stale copy of the number names a closed fd.";

    internal sealed class Series(KeyValuePair<string, object?>[] tags, bool folded)
    {
        public readonly KeyValuePair<string, object?>[] Tags = tags;
        public readonly bool Folded = folded;
        public readonly LatencyHistogram Gaps = new();
        public ulong LastNs;
    }

    private readonly Dictionary<(ulong, ulong), Series> _byComm = [];
    private Series? _other;

    /// <summary>Records the accept's reuse gap, if it has one; returns its series, or null.</summary>
    public Series? Record(in AcceptRecord r)
    {
        if (r.Ret < 0 || r.FdClosedNs == 0 || r.FdClosedNs > r.ExitNs)
            return null;
        ReadOnlySpan<byte> comm = r.Comm;
        var key = (MemoryMarshal.Read<ulong>(comm), MemoryMarshal.Read<ulong>(comm[8..]));
        if (!_byComm.TryGetValue(key, out var series))
        {
            if (_byComm.Count < maxPerMetric)
                _byComm.Add(key, series = new Series([new("comm", CommLabel.Text(comm))], false));
            else
                series = _other ??= new Series([new("comm", SeriesLimit.Other)], true);
        }
        series.Gaps.Record((r.ExitNs - r.FdClosedNs) / 1e9);
        series.LastNs = r.ExitNs;
        return series;
    }

    public void Sweep(ulong nowNs)
    {
        if (idleNs == 0 || nowNs <= idleNs)
            return;
        ulong cutoff = nowNs - idleNs;
        foreach (var key in _byComm.Where(s => s.Value.LastNs < cutoff).Select(s => s.Key).ToList())
            _byComm.Remove(key);
        if (_other is not null && _other.LastNs < cutoff)
            _other = null;
    }

    public void WriteTo(ExpositionWriter writer)
    {
        bool any = false;
        foreach (var series in _other is null ? _byComm.Values : _byComm.Values.Append(_other))
        {
            if (!any)
                writer.Family(Name, "histogram", Help, "seconds");
            any = true;
            series.Gaps.WriteTo(writer, Name, series.Tags);
        }
    }
}
