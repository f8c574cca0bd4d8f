using System.Diagnostics.Metrics;
using System.Globalization;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// Listen overflows and accept-queue depth by network namespace and port, read from the
/// kernel's map at scrape time: `ss -lnt` and /proc/net/netstat for every namespace on the
/// node at once. At most --max-series-per-metric listeners get series of their own; the
/// overflows of the rest are added up under netns="other", port="other".
/// </summary>
public sealed class ListenMetrics
{
    private static readonly KeyValuePair<string, object?>[] Other = [new("netns", SeriesLimit.Other), new("port", SeriesLimit.Other)];

    private readonly int _maxSeries;
    private readonly Dictionary<(uint Netns, ushort Port), KeyValuePair<string, object?>[]> _tags = [];
    private volatile Func<IReadOnlyList<ListenQueue>>? _read;
    private volatile bool _overflowsCounted;

    public ListenMetrics(IMeterFactory meterFactory, int maxSeries = SeriesLimit.DefaultMaxPerMetric)
    {
        _maxSeries = maxSeries;
        var meter = meterFactory.Create(SockTraceMeter.Name);
        meter.CreateObservableCounter("socktrace.listen.overflows", () => _overflowsCounted ? Observe(q => (long)q.Overflows, foldRest: true) : [],
            description: "Connections a listener refused because its accept queue was full (ListenOverflows of its namespace's /proc/net/netstat), by network namespace inode and port. Counted only with the listen_overflow hook attached (it needs kprobes).");
        meter.CreateObservableGauge("socktrace.listen.queue.depth", () => Observe(q => q.Depth, foldRest: false),
            description: "Connections waiting in a listener's accept queue at its last accept() or overflow (Recv-Q of `ss -lnt`), by network namespace inode and port.");
        meter.CreateObservableGauge("socktrace.listen.queue.limit", () => Observe(q => q.Limit, foldRest: false),
            description: "The backlog a listener's listen() set (Send-Q of `ss -lnt`), by network namespace inode and port.");
    }

    /// <summary>Starts reporting what <paramref name="read"/> returns (the kernel map, or a test's
    /// listeners). Without <paramref name="overflowsCounted"/> (the listen_overflow hook left
    /// out) there is no overflow series at all, rather than zeros nothing counted.</summary>
    public void Observe(Func<IReadOnlyList<ListenQueue>> read, bool overflowsCounted)
    {
        _overflowsCounted = overflowsCounted;
        _read = read;
    }

    private List<Measurement<long>> Observe(Func<ListenQueue, long> value, bool foldRest)
    {
        if (_read is not { } read)
            return [];
        var queues = read();
        var measurements = new List<Measurement<long>>(Math.Min(queues.Count, _maxSeries) + 1);
        long rest = 0;
        bool folded = false;
        lock (_tags)
        {
            // Listeners the map no longer holds give their label sets back.
            if (_tags.Count >= _maxSeries)
            {
                var present = queues.Select(q => (q.Netns, q.Port)).ToHashSet();
                foreach (var gone in _tags.Keys.Where(k => !present.Contains(k)).ToList())
                    _tags.Remove(gone);
            }
            foreach (var q in queues)
            {
                if (!_tags.TryGetValue((q.Netns, q.Port), out var tags))
                {
                    if (_tags.Count >= _maxSeries)
                    {
                        rest += value(q);
                        folded = true;
                        continue;
                    }
                    tags = [new("netns", q.Netns.ToString(CultureInfo.InvariantCulture)), new("port", q.Port.ToString(CultureInfo.InvariantCulture))];
                    _tags.Add((q.Netns, q.Port), tags);
                }
                measurements.Add(new Measurement<long>(value(q), tags));
            }
        }
        if (folded && foldRest)
            measurements.Add(new Measurement<long>(rest, Other));
        return measurements;
    }
}
