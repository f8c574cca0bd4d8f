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

    private readonly Dictionary<DeliveryKey, (ulong[] Buckets, ulong SumNs)> _seenLatencies = [];
    private readonly Dictionary<uint, (KeyValuePair<string, object?>[] Tags, long[] Buckets, double Sum)> _latencies = [];

    /// <summary>The family <see cref="WriteTo"/> writes; the agent writes it, not the SDK, which
    /// has no observable histogram to read kernel buckets into.</summary>
    public const string LatencyFamily = "socktrace_rx_delivery_seconds";

    private sealed record Source(Func<IReadOnlyList<Delivery>> Deliveries, Func<IReadOnlyList<LocalPair>> Pairs, Func<IReadOnlyList<DeliveryLatency>>? Latencies);

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
    public void Observe(Func<IReadOnlyList<Delivery>> deliveries, Func<IReadOnlyList<LocalPair>> pairs, Func<IReadOnlyList<DeliveryLatency>>? latencies = null) =>
        _source = new(deliveries, pairs, latencies);

    /// <summary>socktrace_rx_delivery_seconds, a histogram by path over the agent's latency
    /// bounds, summed over namespaces; nothing until a kernel source is observed.</summary>
    internal void WriteTo(ExpositionWriter writer)
    {
        if (_source?.Latencies is not { } read)
            return;
        lock (_lock)
        {
            Update(read());
            writer.Family(LatencyFamily, "histogram",
                "Time from an skb's hand-off to the network stack (netif_receive_skb) to its queueing on a local TCP socket, by the path of that device. Sampled: one skb in 64 on each CPU is stamped, and measured if it is itself queued on the socket (one merged into the previous skb is not); the socket's backlog wait is included.",
                "seconds");
            foreach (var (tags, buckets, sum) in _latencies.Values)
            {
                long cumulative = 0;
                for (int i = 0; i < DeliveryLatencyValue.Bounds; i++)
                {
                    cumulative += buckets[i];
                    writer.Sample(LatencyFamily + "_bucket", tags, cumulative, ExpositionWriter.Number(SockTraceMeter.LatencyBuckets[i]));
                }
                cumulative += buckets[DeliveryLatencyValue.Bounds];
                writer.Sample(LatencyFamily + "_bucket", tags, cumulative, "+Inf");
                writer.Sample(LatencyFamily + "_sum", tags, sum);
                writer.Sample(LatencyFamily + "_count", tags, cumulative);
            }
        }
    }

    /// <summary>As the counters: what each (namespace, path) sampled since the last read, added to its path.</summary>
    internal void Update(IReadOnlyList<DeliveryLatency> latencies)
    {
        var present = new HashSet<DeliveryKey>();
        foreach (var l in latencies)
        {
            var key = new DeliveryKey { Netns = l.Netns, Path = l.Path };
            present.Add(key);
            if (!_latencies.TryGetValue(l.Path, out var total))
                _latencies[l.Path] = total = ([new("path", RxPaths.Label(l.Path))], new long[DeliveryLatencyValue.Bounds + 1], 0);
            bool continues = _seenLatencies.TryGetValue(key, out var last) && l.SumNs >= last.SumNs
                && l.Buckets.Zip(last.Buckets).All(b => b.First >= b.Second);
            for (int i = 0; i < l.Buckets.Length; i++)
                total.Buckets[i] += (long)(l.Buckets[i] - (continues ? last.Buckets[i] : 0));
            total.Sum += (l.SumNs - (continues ? last.SumNs : 0)) / 1e9;
            _latencies[l.Path] = total;
            _seenLatencies[key] = (l.Buckets, l.SumNs);
        }
        foreach (var key in _seenLatencies.Keys.Where(k => !present.Contains(k)).ToList())
            _seenLatencies.Remove(key);
    }

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
