using System.Runtime.InteropServices;

namespace SockTrace.Agent.Events;

// C# twins of st_rx_key and st_rx_value in bpf/socktrace.h (checked by RecordLayoutTests).

/// <summary>st_rx_value.path, and the `path` label each becomes.</summary>
public static class RxPaths
{
    public const uint Loopback = 1;
    public const uint Nic = 2;
    public const uint Virtual = 3;

    public static string Label(uint path) => path switch
    {
        Loopback => "loopback",
        Nic => "nic",
        Virtual => "virtual",
        _ => "unknown",
    };
}

[StructLayout(LayoutKind.Sequential)]
public struct RxKey
{
    public uint Netns;
    public uint Ifindex;
}

[StructLayout(LayoutKind.Sequential)]
public struct RxValue
{
    public ulong Packets;
    public ulong Bytes;
    public uint Path;
    private uint _pad0;
    public Bytes16 Name;
}

/// <summary>One device's receive counters, summed over CPUs.</summary>
public readonly record struct RxDevice(RxKey Key, uint Path, string Name, ulong Packets, ulong Bytes);
