using System.Globalization;
using System.Runtime.InteropServices;
using SockTrace.Agent.Attribution;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// The accept metrics' series: label sets built once per distinct (port, comm, peer or errno)
/// and the values counted under each, so recording a record allocates nothing. At most
/// <see cref="SeriesLimit.MaxPerMetric"/> of each kind are kept; past that, records share a
/// set whose port and comm are "other". Series with no record for the idle time are removed,
/// which frees their place under the cap. Not thread-safe: <see cref="AcceptMetrics"/> locks.
/// </summary>
/// <param name="nowNs">The clock the records' timestamps are on (CLOCK_MONOTONIC ns).</param>
internal sealed class AcceptSeries(int maxPerMetric, ulong idleNs, Func<ulong> nowNs)
{
    /// <summary>A raw, allocation-free key: the 16 comm bytes as two longs.</summary>
    private readonly record struct Key(ushort Port, ulong Comm0, ulong Comm1, int Discriminator);

    private readonly record struct PortCommKey(ushort Port, ulong Comm0, ulong Comm1);

    /// <summary>A (port, comm) set and its two histograms.</summary>
    internal sealed class PortComm(KeyValuePair<string, object?>[] tags, bool folded)
    {
        public readonly KeyValuePair<string, object?>[] Tags = tags;

        /// <summary>Tags is port="other", comm="other": the histograms were at their cap.</summary>
        public readonly bool Folded = folded;

        public readonly LatencyHistogram Duration = new();
        public readonly LatencyHistogram QueueWait = new();

        /// <summary>Kernel time (CLOCK_MONOTONIC ns) of the last record counted here.</summary>
        public ulong LastNs;
    }

    /// <summary>A (port, comm, peer) or (port, comm, errno) set and its count; with pod
    /// attribution on, one count per pod instead.</summary>
    internal sealed class Entry(KeyValuePair<string, object?>[] tags, bool folded, PortComm portComm)
    {
        public readonly KeyValuePair<string, object?>[] Tags = tags;

        /// <summary>Tags holds port="other", comm="other": the metric was at its cap.</summary>
        public readonly bool Folded = folded;

        public readonly PortComm PortComm = portComm;
        public long Count;
        public Dictionary<PodContainer, PodCount>? Pods;
        public ulong LastNs;
    }

    internal sealed class PodCount(KeyValuePair<string, object?>[] tags, string podUid)
    {
        public readonly KeyValuePair<string, object?>[] Tags = tags;
        public readonly string PodUid = podUid;
        public long Count;
    }

    private static readonly KeyValuePair<string, object?>[] OtherPortCommTags = [new("comm", SeriesLimit.Other), new("port", SeriesLimit.Other)];
    private const ulong FullSweepIntervalNs = 1_000_000_000;

    private readonly Dictionary<Key, Entry> _accepted = [];
    private readonly Dictionary<Key, Entry> _failed = [];
    // Both caches share the histograms' (port, comm) sets, which are capped on their own.
    private readonly Dictionary<PortCommKey, PortComm> _portComm = [];
    private PortComm? _otherPortComm;
    // One folded entry per peer class or errno name: both are bounded sets.
    private readonly Dictionary<int, Entry> _acceptedOther = [];
    private readonly Dictionary<int, Entry> _failedOther = [];
    private ulong _lastFullSweepNs;

    public IEnumerable<Entry> Accepted() => _accepted.Values.Concat(_acceptedOther.Values);

    public IEnumerable<Entry> Failed() => _failed.Values.Concat(_failedOther.Values);

    public IEnumerable<PortComm> PortComms() => _otherPortComm is null ? _portComm.Values : _portComm.Values.Append(_otherPortComm);

    public Entry Accepted(in AcceptRecord r, PeerClass peer) =>
        Lookup(_accepted, _acceptedOther, r.ListenPort, r.Comm, (int)peer, "peer", static d => PeerAddress.Label((PeerClass)d));

    /// <summary>errnos outside the kernel's range share one label, so they share one entry.</summary>
    public Entry Failed(ushort port, ReadOnlySpan<byte> comm, int errno) =>
        Lookup(_failed, _failedOther, port, comm, ErrnoNames.Name(errno) == "errno_other" ? -1 : errno, "errno", static d => ErrnoNames.Name(d));

    /// <summary>Counts <paramref name="n"/> for the pod <paramref name="pod"/> under <paramref name="entry"/>.</summary>
    public static void CountPod(Entry entry, PodContainer pod, long n = 1)
    {
        entry.Pods ??= [];
        if (!entry.Pods.TryGetValue(pod, out var count))
            entry.Pods[pod] = count = new PodCount(Sorted(PodLabels.Append(entry.Tags, pod)), pod.PodUid);
        count.Count += n;
    }

    /// <summary>Drops a deleted pod's counts.</summary>
    public void RemovePod(string podUid)
    {
        foreach (var entry in Accepted().Concat(Failed()))
        {
            if (entry.Pods is null)
                continue;
            foreach (var pod in entry.Pods.Where(p => p.Value.PodUid == podUid).Select(p => p.Key).ToList())
                entry.Pods.Remove(pod);
        }
    }

    /// <summary>Removes every series whose last record is older than the idle time before
    /// <paramref name="nowNs"/> (the kernel's clock); does nothing when series never idle out.</summary>
    public void Sweep(ulong nowNs)
    {
        if (idleNs == 0 || nowNs <= idleNs)
            return;
        ulong cutoff = nowNs - idleNs;
        RemoveIdle(_accepted, cutoff);
        RemoveIdle(_failed, cutoff);
        RemoveIdle(_acceptedOther, cutoff);
        RemoveIdle(_failedOther, cutoff);
        // A (port, comm) set goes with the last entry that uses it; every record touches both,
        // so an entry that survived keeps its set even if the set's own stamp looks older.
        var used = Accepted().Concat(Failed()).Select(e => e.PortComm).ToHashSet(ReferenceEqualityComparer.Instance);
        foreach (var (key, set) in _portComm.Where(p => p.Value.LastNs < cutoff && !used.Contains(p.Value)).ToList())
            _portComm.Remove(key);
        if (_otherPortComm is not null && _otherPortComm.LastNs < cutoff && !used.Contains(_otherPortComm))
            _otherPortComm = null;
    }

    private static void RemoveIdle<TKey>(Dictionary<TKey, Entry> entries, ulong cutoff) where TKey : notnull
    {
        foreach (var key in entries.Where(e => e.Value.LastNs < cutoff).Select(e => e.Key).ToList())
            entries.Remove(key);
    }

    private Entry Lookup(Dictionary<Key, Entry> cache, Dictionary<int, Entry> others, ushort listenPort, ReadOnlySpan<byte> comm, int discriminator, string name, Func<int, string> label)
    {
        var portCommKey = new PortCommKey(listenPort, MemoryMarshal.Read<ulong>(comm), MemoryMarshal.Read<ulong>(comm[8..]));
        var key = new Key(portCommKey.Port, portCommKey.Comm0, portCommKey.Comm1, discriminator);
        if (cache.TryGetValue(key, out var entry))
            return entry;
        // At the cap, idle series may be what fills it; looked for at most once a second, so
        // a steady overflow does not scan the whole table per record.
        if (cache.Count >= maxPerMetric && idleNs != 0 && nowNs() is var now && now - _lastFullSweepNs >= FullSweepIntervalNs)
        {
            _lastFullSweepNs = now;
            Sweep(now);
        }
        if (cache.Count >= maxPerMetric)
        {
            // Not cached: the folded sets are found by the bounded discriminator alone, so
            // records past the cap add nothing to the agent's memory.
            if (!others.TryGetValue(discriminator, out entry))
                others[discriminator] = entry = new Entry(Sorted([.. OtherPortCommTags, new(name, label(discriminator))]), true, OtherPortComm());
            return entry;
        }
        string port = listenPort.ToString(CultureInfo.InvariantCulture);
        if (!_portComm.TryGetValue(portCommKey, out var portComm))
        {
            if (_portComm.Count < maxPerMetric)
                _portComm.Add(portCommKey, portComm = new PortComm([new("comm", CommLabel.Text(comm)), new("port", port)], false));
            else
                portComm = OtherPortComm();
        }
        KeyValuePair<string, object?>[] own = portComm.Folded ? [new("comm", CommLabel.Text(comm)), new("port", port)] : portComm.Tags;
        entry = new Entry(Sorted([.. own, new(name, label(discriminator))]), false, portComm);
        cache.Add(key, entry);
        return entry;
    }

    /// <summary>Labels in name order, as the exporter writes the other families' labels.</summary>
    private static KeyValuePair<string, object?>[] Sorted(KeyValuePair<string, object?>[] tags)
    {
        Array.Sort(tags, static (a, b) => string.CompareOrdinal(a.Key, b.Key));
        return tags;
    }

    private PortComm OtherPortComm() => _otherPortComm ??= new PortComm(OtherPortCommTags, true);
}
