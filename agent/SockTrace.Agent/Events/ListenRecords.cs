using System.Runtime.InteropServices;

namespace SockTrace.Agent.Events;

// C# twins of st_listen_key and st_listen_value in bpf/socktrace.h (checked by RecordLayoutTests).

[StructLayout(LayoutKind.Sequential)]
public struct ListenKey
{
    public uint Netns;
    public ushort Port;
    private ushort _pad;
}

[StructLayout(LayoutKind.Sequential)]
public struct ListenValue
{
    public ulong Overflows;
    public uint Depth;
    public uint Limit;
}

/// <summary>One listening socket: its network namespace (inode number), port, overflows
/// counted, and accept-queue length and backlog at its last accept or overflow.</summary>
public readonly record struct ListenQueue(uint Netns, ushort Port, ulong Overflows, uint Depth, uint Limit);
