using System.Runtime.InteropServices;

namespace SockTrace.Agent.Events;

// C# twins of st_delivery_key, st_delivery_value and st_local_pair_key in bpf/socktrace.h
// (checked by RecordLayoutTests).

[StructLayout(LayoutKind.Sequential)]
public struct DeliveryKey
{
    public uint Netns;
    /// <summary><see cref="RxPaths"/>; 0 when the receive queue had no skb to tell.</summary>
    public uint Path;
}

[StructLayout(LayoutKind.Sequential)]
public struct DeliveryValue
{
    public ulong Bytes;
    public ulong Segments;
}

[StructLayout(LayoutKind.Sequential)]
public struct LocalPairKey
{
    public uint Netns;
    public ushort Port;
    private ushort _pad;
    public Bytes16 Comm;
}

/// <summary>st_delivery_latency: sampled delivery times, a count per bucket of
/// <see cref="Metrics.SockTraceMeter.LatencyBuckets"/> (the last above them all) and the sum.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DeliveryLatencyValue
{
    public const int Bounds = 24;
    public LatencyCounts Buckets;
    public ulong SumNs;
}

[System.Runtime.CompilerServices.InlineArray(DeliveryLatencyValue.Bounds + 1)]
public struct LatencyCounts
{
    private ulong _element0;
}

/// <summary>One (namespace, path)'s latency samples, summed over CPUs.</summary>
public sealed record DeliveryLatency(uint Netns, uint Path, ulong[] Buckets, ulong SumNs);

/// <summary>Bytes and segments delivered to TCP sockets of one network namespace over one path, summed over CPUs.</summary>
public readonly record struct Delivery(uint Netns, uint Path, ulong Bytes, ulong Segments);

/// <summary>Loopback bytes between two sockets of one network namespace, by listener port and client process, summed over CPUs.</summary>
public readonly record struct LocalPair(uint Netns, ushort Port, string Comm, ulong Bytes);
