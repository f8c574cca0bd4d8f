using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using SockTrace.Agent.Attribution;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// A counter whose family the agent writes into /metrics itself (<see cref="WriteTo"/>), as
/// it does the accept families: with attribution on, each series gains namespace, pod and
/// container, and a deleted pod's series are dropped, which a counter of the OpenTelemetry
/// SDK cannot do (it exports every series it has seen until the process exits). Each count
/// also goes to the SockTrace meter's instrument of the same name while an in-process
/// listener enables it; the SDK is told to drop that one (<see cref="SockTraceMeter"/>).
/// </summary>
internal sealed class PodCounter
{
    private readonly Counter<long> _counter;
    private readonly PodAttribution? _attribution;
    private readonly string _family;
    private readonly string _help;
    private readonly Lock _lock = new();
    // Keyed by the label array's identity: the label caches hand out one array per label set.
    private readonly Dictionary<(KeyValuePair<string, object?>[] Tags, PodContainer? Pod), Series> _series = new(new KeyComparer());

    private sealed class Series(KeyValuePair<string, object?>[] tags)
    {
        public readonly KeyValuePair<string, object?>[] Tags = tags;
        public long Count;
    }

    /// <param name="family">The exposition's sample name, e.g. socktrace_fd_races_total.</param>
    public PodCounter(Meter meter, string instrument, string family, string help, PodAttribution? attribution)
    {
        _attribution = attribution;
        _family = family;
        _help = help;
        _counter = meter.CreateCounter<long>(instrument, description: help);
        if (attribution is not null)
            attribution.PodRemoved += Drop;
    }

    /// <summary>Counts one under <paramref name="tags"/> and, with attribution on, the pod of
    /// <paramref name="cgroupId"/> (empty labels for a host process).</summary>
    public void Add(KeyValuePair<string, object?>[] tags, ulong cgroupId)
    {
        var pod = _attribution is null ? null : _attribution.Resolve(cgroupId) ?? PodLabels.None;
        Series? series;
        lock (_lock)
        {
            if (!_series.TryGetValue((tags, pod), out series))
                _series[(tags, pod)] = series = new Series(pod is null ? tags : PodLabels.Append(tags, pod));
            series.Count++;
        }
        if (_counter.Enabled)
            _counter.Add(1, series.Tags);
    }

    /// <summary>Writes the family: nothing until something was counted.</summary>
    public void WriteTo(ExpositionWriter writer)
    {
        lock (_lock)
        {
            if (_series.Count == 0)
                return;
            writer.Family(_family, "counter", _help);
            foreach (var series in _series.Values)
                writer.Sample(_family, series.Tags, series.Count);
        }
    }

    private void Drop(string podUid)
    {
        lock (_lock)
        {
            foreach (var key in _series.Keys.Where(k => k.Pod?.PodUid == podUid).ToList())
                _series.Remove(key);
        }
    }

    private sealed class KeyComparer : IEqualityComparer<(KeyValuePair<string, object?>[] Tags, PodContainer? Pod)>
    {
        public bool Equals((KeyValuePair<string, object?>[] Tags, PodContainer? Pod) x, (KeyValuePair<string, object?>[] Tags, PodContainer? Pod) y) =>
            ReferenceEquals(x.Tags, y.Tags) && Equals(x.Pod, y.Pod);

        public int GetHashCode((KeyValuePair<string, object?>[] Tags, PodContainer? Pod) key) =>
            HashCode.Combine(RuntimeHelpers.GetHashCode(key.Tags), key.Pod);
    }
}
