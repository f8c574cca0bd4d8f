using System.Diagnostics.Metrics;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// Bytes delivered to local TCP sockets by receive path, and the loopback bytes between two
/// sockets of one network namespace, read from the kernel's per-CPU maps at scrape time
/// (bpf/delivery.bpf.c; there is no record per segment).
/// </summary>
public sealed class DeliveryMetrics
{
    private readonly object _lock = new();
    private readonly int _maxPairs;
    private readonly Dictionary<DeliveryKey, (ulong Bytes, ulong Segments)> _seenDeliveries = [];
    private readonly Dictionary<uint, Total> _byPath = [];
    private readonly Dictionary<(uint Netns, ushort Port, string Comm), ulong> _seenPairs = [];
    private readonly Dictionary<(string Port, string Comm), Total> _pairs = [];
    private volatile Source? _source;

    private sealed record Source(Func<IReadOnlyList<Delivery>> Deliveries, Func<IReadOnlyList<LocalPair>> Pairs);

    private sealed class Total(KeyValuePair<string, object?>[] tags)
    {
        public readonly KeyValuePair<string, object?>[] Tags = tags;
        public long Bytes;
        public long Segments;
    }

    public DeliveryMetrics(IMeterFactory meterFactory, int maxPairSeries = SeriesLimit.DefaultMaxPerMetric)
    {
        _maxPairs = maxPairSeries;
        var meter = meterFactory.Create(SockTraceMeter.Name);
        meter.CreateObservableCounter("socktrace.socket.rx.bytes", () => ObservePaths(t => t.Bytes),
            description: "Payload bytes queued in order on local TCP sockets, each byte once, by the path (loopback, nic, virtual) of the device the segment last entered a network stack on; a packet that crossed a NIC, a bridge and a veth counts once, as virtual.");
        meter.CreateObservableCounter("socktrace.socket.rx.segments", () => ObservePaths(t => t.Segments),
            description: "Data segments received by local TCP sockets (tcp_info data_segs_in, GRO-merged segments counted one by one), by the path of the device they last entered a network stack on.");
        meter.CreateObservableCounter("socktrace.loopback.local_pair.bytes", ObservePairs,
            description: "Payload bytes over loopback TCP between two sockets of the same network namespace (the traffic a sockmap redirect could take off the stack), by the listener's port and the connecting process.");
    }

    /// <summary>Starts reporting what the readers return (the kernel maps, or a test's values).</summary>
    public void Observe(Func<IReadOnlyList<Delivery>> deliveries, Func<IReadOnlyList<LocalPair>> pairs) => _source = new(deliveries, pairs);

    private IEnumerable<Measurement<long>> ObservePaths(Func<Total, long> value)
    {
        if (_source is not { } source)
            return [];
        lock (_lock)
        {
            Update(source.Deliveries());
            return [.. _byPath.Values.Select(t => new Measurement<long>(value(t), t.Tags))];
        }
    }

    private IEnumerable<Measurement<long>> ObservePairs()
    {
        if (_source is not { } source)
            return [];
        lock (_lock)
        {
            Update(source.Pairs());
            return [.. _pairs.Values.Select(t => new Measurement<long>(t.Bytes, t.Tags))];
        }
    }

    /// <summary>
    /// Adds what each (namespace, path) counted since the last read to its path's total: the
    /// series sum every namespace, and a key the LRU map evicted and created again starts
    /// from zero, so totals never go back.
    /// </summary>
    internal void Update(IReadOnlyList<Delivery> deliveries)
    {
        var present = new HashSet<DeliveryKey>();
        foreach (var d in deliveries)
        {
            var key = new DeliveryKey { Netns = d.Netns, Path = d.Path };
            present.Add(key);
            if (!_byPath.TryGetValue(d.Path, out var total))
                _byPath[d.Path] = total = new Total([new("path", RxPaths.Label(d.Path))]);
            var (bytes, segments) = _seenDeliveries.TryGetValue(key, out var last) && d.Bytes >= last.Bytes && d.Segments >= last.Segments
                ? (d.Bytes - last.Bytes, d.Segments - last.Segments)
                : (d.Bytes, d.Segments);
            total.Bytes += (long)bytes;
            total.Segments += (long)segments;
            _seenDeliveries[key] = (d.Bytes, d.Segments);
        }
        foreach (var key in _seenDeliveries.Keys.Where(k => !present.Contains(k)).ToList())
            _seenDeliveries.Remove(key);
    }

    /// <summary>As <see cref="Update(IReadOnlyList{Delivery})"/>, by (listener port, client comm)
    /// summed over namespaces; beyond the cap a new pair folds into port="other", comm="other".</summary>
    internal void Update(IReadOnlyList<LocalPair> pairs)
    {
        var present = new HashSet<(uint, ushort, string)>();
        foreach (var p in pairs)
        {
            var key = (p.Netns, p.Port, p.Comm);
            present.Add(key);
            var label = (p.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), p.Comm);
            if (!_pairs.TryGetValue(label, out var total))
            {
                if (_pairs.Count >= _maxPairs)
                    label = (SeriesLimit.Other, SeriesLimit.Other);
                if (!_pairs.TryGetValue(label, out total))
                    _pairs[label] = total = new Total([new("port", label.Item1), new("comm", label.Item2)]);
            }
            ulong bytes = _seenPairs.TryGetValue(key, out ulong last) && p.Bytes >= last ? p.Bytes - last : p.Bytes;
            total.Bytes += (long)bytes;
            _seenPairs[key] = p.Bytes;
        }
        foreach (var key in _seenPairs.Keys.Where(k => !present.Contains(k)).ToList())
            _seenPairs.Remove(key);
    }
}
