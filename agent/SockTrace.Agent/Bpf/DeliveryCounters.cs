using SockTrace.Agent.Events;

namespace SockTrace.Agent.Bpf;

/// <summary>Reads st_delivery and st_local_pairs (bpf/delivery.bpf.c), per-CPU hashes summed at scrape time.</summary>
public sealed unsafe class DeliveryCounters
{
    private readonly int _deliveryFd;
    private readonly int _pairsFd;
    private readonly int _latencyFd;
    private readonly int _cpus;

    public DeliveryCounters(int deliveryFd, int pairsFd, int latencyFd)
    {
        _deliveryFd = deliveryFd;
        _pairsFd = pairsFd;
        _latencyFd = latencyFd;
        _cpus = Interop.Libbpf.libbpf_num_possible_cpus();
        if (_cpus <= 0)
            throw new BpfException("libbpf_num_possible_cpus", -_cpus, "");
    }

    /// <summary>Every (network namespace, path) in the map.</summary>
    public List<Delivery> ReadDeliveries()
    {
        var result = new List<Delivery>();
        // A per-CPU lookup fills one value per possible CPU.
        var values = new DeliveryValue[_cpus];
        fixed (DeliveryValue* v = values)
            BpfMapWalk.Each<DeliveryKey>(_deliveryFd, "st_delivery", v, key =>
            {
                ulong bytes = 0, segments = 0;
                foreach (var value in values)
                {
                    bytes += value.Bytes;
                    segments += value.Segments;
                }
                result.Add(new Delivery(key.Netns, key.Path, bytes, segments));
            });
        return result;
    }

    /// <summary>Every (network namespace, listener port, client process) in the map.</summary>
    public List<LocalPair> ReadLocalPairs()
    {
        var result = new List<LocalPair>();
        BpfMapWalk.EachSummed<LocalPairKey>(_pairsFd, "st_local_pairs", _cpus,
            (key, bytes) => result.Add(new LocalPair(key.Netns, key.Port, Metrics.CommLabel.Text(key.Comm), bytes)));
        return result;
    }

    /// <summary>Every (network namespace, path) with latency samples.</summary>
    public List<DeliveryLatency> ReadLatencies()
    {
        var result = new List<DeliveryLatency>();
        var values = new DeliveryLatencyValue[_cpus];
        fixed (DeliveryLatencyValue* v = values)
            BpfMapWalk.Each<DeliveryKey>(_latencyFd, "st_delivery_latency", v, key =>
            {
                var buckets = new ulong[DeliveryLatencyValue.Bounds + 1];
                ulong sum = 0;
                foreach (var value in values)
                {
                    for (int i = 0; i < buckets.Length; i++)
                        buckets[i] += value.Buckets[i];
                    sum += value.SumNs;
                }
                result.Add(new DeliveryLatency(key.Netns, key.Path, buckets, sum));
            });
        return result;
    }
}
