using SockTrace.Agent.Events;

namespace SockTrace.Agent.Bpf;

/// <summary>Reads st_rx_devices (bpf/rx.bpf.c), a per-CPU hash of receive counters by device.</summary>
public sealed unsafe class RxDeviceCounters
{
    private readonly int _mapFd;
    private readonly int _cpus;

    public RxDeviceCounters(int mapFd)
    {
        _mapFd = mapFd;
        _cpus = Interop.Libbpf.libbpf_num_possible_cpus();
        if (_cpus <= 0)
            throw new BpfException("libbpf_num_possible_cpus", -_cpus, "");
    }

    /// <summary>Every device in the map.</summary>
    public List<RxDevice> Read()
    {
        var devices = new List<RxDevice>();
        // A per-CPU lookup fills one value per possible CPU, each rounded up to 8 bytes.
        var values = new RxValue[_cpus];
        fixed (RxValue* v = values)
            BpfMapWalk.Each<RxKey>(_mapFd, "st_rx_devices", v, key => devices.Add(Sum(key, values)));
        return devices;
    }

    /// <summary>Counts add up over CPUs; path and name are on the CPU that first saw the device.</summary>
    internal static RxDevice Sum(RxKey key, ReadOnlySpan<RxValue> perCpu)
    {
        ulong packets = 0, bytes = 0;
        uint path = 0;
        string name = "";
        foreach (ref readonly var value in perCpu)
        {
            packets += value.Packets;
            bytes += value.Bytes;
            if (path == 0 && value.Path != 0)
            {
                path = value.Path;
                name = Metrics.CommLabel.Text(value.Name);
            }
        }
        return new RxDevice(key, path, name, packets, bytes);
    }
}
