namespace SockTrace.Agent.Bpf;

/// <summary>Walks a hash map from user space, key by key (bpf_map_get_next_key), at scrape time.</summary>
internal static unsafe class BpfMapWalk
{
    private const int ENOENT = 2;

    /// <summary>
    /// Looks up every key into <paramref name="value"/> (sized for the map's value: per-CPU maps
    /// fill one per possible CPU) and calls <paramref name="visit"/> with it. The map may change
    /// while it is walked: a key added meanwhile waits for the next walk, one evicted meanwhile is
    /// skipped.
    /// </summary>
    public static void Each<TKey>(int mapFd, string mapName, void* value, Action<TKey> visit) where TKey : unmanaged
    {
        TKey key = default, next;
        TKey* previous = null;
        while (true)
        {
            int err = Interop.Libbpf.bpf_map_get_next_key(mapFd, previous, &next);
            if (err == -ENOENT)
                return;
            if (err < 0)
                throw new BpfException("bpf_map_get_next_key", -err, mapName);
            key = next;
            previous = &key;
            err = Interop.Libbpf.bpf_map_lookup_elem(mapFd, &key, value);
            if (err == -ENOENT)
                continue;
            if (err < 0)
                throw new BpfException("bpf_map_lookup_elem", -err, mapName);
            visit(key);
        }
    }

    /// <summary>
    /// Walks a per-CPU hash whose value is one counter, calling <paramref name="visit"/> with
    /// each key and its counter summed over the <paramref name="cpus"/> possible CPUs.
    /// </summary>
    public static void EachSummed<TKey>(int mapFd, string mapName, int cpus, Action<TKey, ulong> visit) where TKey : unmanaged
    {
        var values = new ulong[cpus];
        fixed (ulong* v = values)
            Each<TKey>(mapFd, mapName, v, key =>
            {
                ulong sum = 0;
                foreach (ulong value in values)
                    sum += value;
                visit(key, sum);
            });
    }
}
