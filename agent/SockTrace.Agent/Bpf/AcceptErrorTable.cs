using SockTrace.Agent.Events;

namespace SockTrace.Agent.Bpf;

/// <summary>
/// Reads the failed accepts the kernel counts (bpf/accept.bpf.c): per CPU, in the slots of
/// st_error_cache and, for a key whose slot another holds, in the per-CPU hash
/// st_accept_errors. A key's count is its slots' and entries' over every CPU.
/// </summary>
public sealed unsafe class AcceptErrorTable
{
    internal const uint CacheSlots = 256; // ST_ACCEPT_ERROR_SLOTS (RecordLayoutTests)
    private const int ENOENT = 2;
    private readonly int _cacheFd;
    private readonly int _mapFd;
    private readonly int _cpus;
    // Each slot's key on each CPU as last read. A slot is claimed once, its key written before
    // its count; a key not seen there before may be being written, so it counts only once a
    // second read of the slot gives the same key.
    private readonly AcceptErrorKey[] _claimed;
    private readonly HashSet<(ulong, ushort, ushort, ulong, ulong)> _inCache = [];

    public AcceptErrorTable(int cacheFd, int mapFd)
    {
        (_cacheFd, _mapFd) = (cacheFd, mapFd);
        _cpus = Interop.Libbpf.libbpf_num_possible_cpus();
        if (_cpus <= 0)
            throw new BpfException("libbpf_num_possible_cpus", -_cpus, "");
        _claimed = new AcceptErrorKey[CacheSlots * _cpus];
    }

    /// <summary>Every key with its count over CPUs.</summary>
    public List<(AcceptErrorKey Key, ulong Count)> Read()
    {
        lock (_claimed)
            return ReadLocked();
    }

    private List<(AcceptErrorKey Key, ulong Count)> ReadLocked()
    {
        var totals = new Dictionary<(ulong, ushort, ushort, ulong, ulong), (AcceptErrorKey Key, ulong Count)>();
        var slots = new AcceptErrorSlot[_cpus];
        var again = new AcceptErrorSlot[_cpus];
        fixed (AcceptErrorSlot* v = slots, w = again)
        {
            for (uint index = 0; index < CacheSlots; index++)
            {
                LookUpSlot(index, v);
                bool reread = false;
                for (int cpu = 0; cpu < _cpus; cpu++)
                {
                    ref readonly var slot = ref slots[cpu];
                    if (slot.Count == 0)
                        continue;
                    ref var claimed = ref _claimed[index * _cpus + cpu];
                    if (claimed.Id() != slot.Key.Id())
                    {
                        if (!reread)
                            LookUpSlot(index, w);
                        reread = true;
                        if (again[cpu].Key.Id() != slot.Key.Id())
                            continue; // still being written: counted at the next read
                        claimed = slot.Key;
                    }
                    _inCache.Add(slot.Key.Id());
                    Add(totals, slot.Key, slot.Count);
                }
            }
        }
        BpfMapWalk.EachSummed<AcceptErrorKey>(_mapFd, "st_accept_errors", _cpus, (key, count) => Add(totals, key, count));
        return [.. totals.Values];
    }

    /// <summary>
    /// Deletes a key that stopped changing (<see cref="Metrics.AcceptMetrics.ObserveKernelErrors"/>)
    /// from st_accept_errors, unless it also holds a cache slot, which keeps its count for good:
    /// false then, and the key stays.
    /// </summary>
    public bool Forget(AcceptErrorKey key)
    {
        lock (_claimed)
            if (_inCache.Contains(key.Id()))
                return false;
        int err = Interop.Libbpf.bpf_map_delete_elem(_mapFd, &key);
        if (err < 0 && err != -ENOENT)
            throw new BpfException("bpf_map_delete_elem", -err, "st_accept_errors");
        return true;
    }

    private void LookUpSlot(uint index, AcceptErrorSlot* values)
    {
        // A per-CPU lookup fills one value per possible CPU (40 bytes each: a multiple of 8).
        int err = Interop.Libbpf.bpf_map_lookup_elem(_cacheFd, &index, values);
        if (err < 0)
            throw new BpfException("bpf_map_lookup_elem", -err, "st_error_cache");
    }

    private static void Add(Dictionary<(ulong, ushort, ushort, ulong, ulong), (AcceptErrorKey Key, ulong Count)> totals, AcceptErrorKey key, ulong count)
    {
        var id = key.Id();
        totals.TryGetValue(id, out var sum);
        totals[id] = (key, sum.Count + count);
    }
}
