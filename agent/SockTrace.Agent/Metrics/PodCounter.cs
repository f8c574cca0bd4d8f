using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using SockTrace.Agent.Attribution;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// A counter that, with attribution on, adds namespace, pod and container to each series and
/// removes a pod's series when the pod is deleted. A synchronous Counter cannot do the second:
/// the OpenTelemetry SDK keeps exporting every series it has seen until the process exits.
/// So with attribution on this is an observable counter over its own totals, and a deleted
/// pod's totals are dropped, so its series are no longer reported. With attribution off it is
/// the plain synchronous counter, labels unchanged.
/// </summary>
internal sealed class PodCounter
{
    private readonly Counter<long>? _counter;
    private readonly PodAttribution? _attribution;
    private readonly Lock _lock = new();
    // Keyed by the label array's identity: the label caches hand out one array per label set.
    private readonly Dictionary<(KeyValuePair<string, object?>[] Tags, PodContainer Pod), Series> _series = new(new KeyComparer());

    private sealed class Series(KeyValuePair<string, object?>[] tags)
    {
        public readonly KeyValuePair<string, object?>[] Tags = tags;
        public long Count;
    }

    public PodCounter(Meter meter, string name, string description, PodAttribution? attribution)
    {
        _attribution = attribution;
        if (attribution is null)
        {
            _counter = meter.CreateCounter<long>(name, description: description);
            return;
        }
        meter.CreateObservableCounter(name, Observe, description: description);
        attribution.PodRemoved += Drop;
    }

    /// <summary>Counts one under <paramref name="tags"/> and, with attribution on, the pod of
    /// <paramref name="cgroupId"/> (empty labels for a host process).</summary>
    public void Add(KeyValuePair<string, object?>[] tags, ulong cgroupId)
    {
        if (_counter is not null)
        {
            _counter.Add(1, tags);
            return;
        }
        var pod = _attribution!.Resolve(cgroupId) ?? PodLabels.None;
        lock (_lock)
        {
            if (!_series.TryGetValue((tags, pod), out var series))
                _series[(tags, pod)] = series = new Series(PodLabels.Append(tags, pod));
            series.Count++;
        }
    }

    private List<Measurement<long>> Observe()
    {
        lock (_lock)
            return [.. _series.Values.Select(s => new Measurement<long>(s.Count, s.Tags))];
    }

    private void Drop(string podUid)
    {
        lock (_lock)
        {
            foreach (var key in _series.Keys.Where(k => k.Pod.PodUid == podUid).ToList())
                _series.Remove(key);
        }
    }

    private sealed class KeyComparer : IEqualityComparer<(KeyValuePair<string, object?>[] Tags, PodContainer Pod)>
    {
        public bool Equals((KeyValuePair<string, object?>[] Tags, PodContainer Pod) x, (KeyValuePair<string, object?>[] Tags, PodContainer Pod) y) =>
            ReferenceEquals(x.Tags, y.Tags) && x.Pod.Equals(y.Pod);

        public int GetHashCode((KeyValuePair<string, object?>[] Tags, PodContainer Pod) key) =>
            HashCode.Combine(RuntimeHelpers.GetHashCode(key.Tags), key.Pod);
    }
}
