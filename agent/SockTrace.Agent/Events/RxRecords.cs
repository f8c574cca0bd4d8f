using System.Runtime.InteropServices;

namespace SockTrace.Agent.Events;

// C# twins of st_rx_key, st_rx_slot, st_rx_count and st_rx_name in bpf/socktrace.h (checked by RecordLayoutTests).

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

/// <summary>One slot of the per-CPU device cache st_rx_cache; Key.Ifindex 0 is a free slot.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct RxSlot
{
    public RxKey Key;
    public ulong Packets;
    public ulong Bytes;
}

/// <summary>A device's counts on one CPU in st_rx_devices.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct RxCount
{
    public ulong Packets;
    public ulong Bytes;
}

/// <summary>A device's name and path in st_rx_names.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct RxName
{
    public uint Path;
    private uint _pad0;
    public Bytes16 Name;
}

/// <summary>One device's receive counters, summed over CPUs.</summary>
public readonly record struct RxDevice(RxKey Key, uint Path, string Name, ulong Packets, ulong Bytes);
