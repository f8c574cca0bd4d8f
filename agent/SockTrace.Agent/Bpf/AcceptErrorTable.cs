using SockTrace.Agent.Events;

namespace SockTrace.Agent.Bpf;

/// <summary>Reads st_accept_errors (bpf/accept.bpf.c): failed accepts per key, per CPU.</summary>
public sealed unsafe class AcceptErrorTable
{
    private const int ENOENT = 2;
    private readonly int _mapFd;
    private readonly int _cpus;

    public AcceptErrorTable(int mapFd)
    {
        _mapFd = mapFd;
        _cpus = Interop.Libbpf.libbpf_num_possible_cpus();
        if (_cpus <= 0)
            throw new BpfException("libbpf_num_possible_cpus", -_cpus, "");
    }

    /// <summary>Every key with its count over CPUs.</summary>
    public List<(AcceptErrorKey Key, ulong Count)> Read()
    {
        var counts = new List<(AcceptErrorKey, ulong)>();
        var values = new ulong[_cpus];
        fixed (ulong* v = values)
            BpfMapWalk.Each<AcceptErrorKey>(_mapFd, "st_accept_errors", v, key =>
            {
                ulong sum = 0;
                foreach (ulong value in values)
                    sum += value;
                counts.Add((key, sum));
            });
        return counts;
    }

    /// <summary>Deletes a key that stopped changing (<see cref="Metrics.AcceptMetrics.ObserveKernelErrors"/>).</summary>
    public void Forget(AcceptErrorKey key)
    {
        int err = Interop.Libbpf.bpf_map_delete_elem(_mapFd, &key);
        if (err < 0 && err != -ENOENT)
            throw new BpfException("bpf_map_delete_elem", -err, "st_accept_errors");
    }
}
