namespace SockTrace.Agent.Bpf;

/// <summary>Reads a BPF_MAP_TYPE_PERCPU_ARRAY of __u64 counters, summed over CPUs.</summary>
public sealed unsafe class PerCpuCounters
{
    private readonly int _mapFd;
    private readonly int _cpus;

    public PerCpuCounters(int mapFd)
    {
        _mapFd = mapFd;
        // A per-CPU lookup fills one value per *possible* CPU, not per online one.
        _cpus = Interop.Libbpf.libbpf_num_possible_cpus();
        if (_cpus <= 0)
            throw new BpfException("libbpf_num_possible_cpus", -_cpus, "");
    }

    public ulong Read(uint slot)
    {
        ulong* values = stackalloc ulong[_cpus];
        int err = Interop.Libbpf.bpf_map_lookup_elem(_mapFd, &slot, values);
        if (err < 0)
            throw new BpfException("bpf_map_lookup_elem", -err, $"counter slot {slot}");
        ulong sum = 0;
        for (int i = 0; i < _cpus; i++)
            sum += values[i];
        return sum;
    }
}
