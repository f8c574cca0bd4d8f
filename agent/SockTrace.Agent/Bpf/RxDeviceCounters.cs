using SockTrace.Agent.Events;

namespace SockTrace.Agent.Bpf;

/// <summary>
/// Reads the rx hook's counters (bpf/rx.bpf.c): the per-CPU device cache st_rx_cache, the
/// per-CPU hash st_rx_devices of the devices whose cache slot another holds, and each
/// device's name and path from st_rx_names. A device's counts are its slots' and entries'
/// over every CPU.
/// </summary>
public sealed unsafe class RxDeviceCounters
{
    internal const uint CacheSlots = 256; // ST_RX_CACHE_SLOTS (RecordLayoutTests)
    private readonly int _cacheFd;
    private readonly int _devicesFd;
    private readonly int _namesFd;
    private readonly int _cpus;

    public RxDeviceCounters(int cacheFd, int devicesFd, int namesFd)
    {
        (_cacheFd, _devicesFd, _namesFd) = (cacheFd, devicesFd, namesFd);
        _cpus = Interop.Libbpf.libbpf_num_possible_cpus();
        if (_cpus <= 0)
            throw new BpfException("libbpf_num_possible_cpus", -_cpus, "");
    }

    /// <summary>Every device counted so far.</summary>
    public List<RxDevice> Read()
    {
        var counts = new Dictionary<RxKey, (ulong Packets, ulong Bytes)>();
        // A per-CPU lookup fills one value per possible CPU, each rounded up to 8 bytes.
        var slots = new RxSlot[_cpus];
        fixed (RxSlot* v = slots)
        {
            for (uint index = 0; index < CacheSlots; index++)
            {
                uint key = index;
                int err = Interop.Libbpf.bpf_map_lookup_elem(_cacheFd, &key, v);
                if (err < 0)
                    throw new BpfException("bpf_map_lookup_elem", -err, "st_rx_cache");
                foreach (ref readonly var slot in slots.AsSpan())
                    if (slot.Key.Ifindex != 0)
                        Add(counts, slot.Key, slot.Packets, slot.Bytes);
            }
        }
        var perCpu = new RxCount[_cpus];
        fixed (RxCount* v = perCpu)
            BpfMapWalk.Each<RxKey>(_devicesFd, "st_rx_devices", v, key =>
            {
                foreach (ref readonly var c in perCpu.AsSpan())
                    Add(counts, key, c.Packets, c.Bytes);
            });
        var names = new Dictionary<RxKey, RxName>();
        var name = new RxName[1];
        fixed (RxName* v = name)
            BpfMapWalk.Each<RxKey>(_namesFd, "st_rx_names", v, key => names[key] = name[0]);
        var devices = new List<RxDevice>(counts.Count);
        foreach (var (key, (packets, bytes)) in counts)
        {
            // A device is named before its first count; one whose name was evicted (8192
            // devices seen since) keeps its counts under path "unknown" and no name.
            names.TryGetValue(key, out var n);
            devices.Add(new RxDevice(key, n.Path, Metrics.CommLabel.Text(n.Name), packets, bytes));
        }
        return devices;
    }

    private static void Add(Dictionary<RxKey, (ulong Packets, ulong Bytes)> counts, RxKey key, ulong packets, ulong bytes)
    {
        counts.TryGetValue(key, out var sum);
        counts[key] = (sum.Packets + packets, sum.Bytes + bytes);
    }
}
