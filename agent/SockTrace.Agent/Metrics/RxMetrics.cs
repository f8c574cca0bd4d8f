using System.Diagnostics.Metrics;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// Packets and bytes each device handed to the protocol stack, by path and device name,
/// read from the kernel's per-CPU map at scrape time (there is no record per packet).
/// </summary>
public sealed class RxMetrics
{
    private readonly object _lock = new();
    private readonly Dictionary<RxKey, (ulong Packets, ulong Bytes)> _seen = [];
    private readonly Dictionary<(uint Path, string Name), Total> _totals = [];
    private volatile Func<IReadOnlyList<RxDevice>>? _read;

    private sealed class Total(KeyValuePair<string, object?>[] tags)
    {
        public readonly KeyValuePair<string, object?>[] Tags = tags;
        public long Packets;
        public long Bytes;
    }

    public RxMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(SockTraceMeter.Name);
        meter.CreateObservableCounter("socktrace.rx.packets", () => Observe(t => t.Packets),
            description: "Packets handed to the protocol stack, by receive path (loopback, nic, virtual) and device; GRO-merged packets count once.");
        meter.CreateObservableCounter("socktrace.rx.bytes", () => Observe(t => t.Bytes),
            description: "Bytes handed to the protocol stack (from the IP header on), by receive path (loopback, nic, virtual) and device.");
    }

    /// <summary>Starts reporting what <paramref name="read"/> returns (the kernel map, or a test's devices).</summary>
    public void Observe(Func<IReadOnlyList<RxDevice>> read) => _read = read;

    private IEnumerable<Measurement<long>> Observe(Func<Total, long> value)
    {
        if (_read is not { } read)
            return [];
        lock (_lock)
        {
            Update(read());
            return [.. _totals.Values.Select(t => new Measurement<long>(value(t), t.Tags))];
        }
    }

    /// <summary>
    /// Folds the devices into totals by (path, name). Devices of the same name in different
    /// network namespaces (every pod's eth0) share a series, and what a device counted stays
    /// in it after the device is gone, so the series only grows. A name no device holds any
    /// more is dropped, which keeps the series bounded by the devices that exist.
    /// </summary>
    internal void Update(IReadOnlyList<RxDevice> devices)
    {
        var live = new HashSet<(uint, string)>();
        var present = new HashSet<RxKey>();
        foreach (var d in devices)
        {
            if (d.Path == 0)
                continue;
            var label = (d.Path, d.Name);
            live.Add(label);
            present.Add(d.Key);
            if (!_totals.TryGetValue(label, out var total))
                _totals[label] = total = new Total([new("path", RxPaths.Label(d.Path)), new("device", d.Name)]);
            // A key the map evicted and created again starts from zero.
            var (packets, bytes) = _seen.TryGetValue(d.Key, out var last) && d.Packets >= last.Packets && d.Bytes >= last.Bytes
                ? (d.Packets - last.Packets, d.Bytes - last.Bytes)
                : (d.Packets, d.Bytes);
            total.Packets += (long)packets;
            total.Bytes += (long)bytes;
            _seen[d.Key] = (d.Packets, d.Bytes);
        }
        foreach (var key in _seen.Keys.Where(k => !present.Contains(k)).ToList())
            _seen.Remove(key);
        foreach (var label in _totals.Keys.Where(l => !live.Contains(l)).ToList())
            _totals.Remove(label);
    }
}
