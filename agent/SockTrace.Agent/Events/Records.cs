using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SockTrace.Agent.Events;

// C# twins of bpf/socktrace.h. Layout must match byte for byte:
// tests/SockTrace.Tests/Events/RecordLayoutTests.cs compiles the header and compares.

public static class RecordTypes
{
    public const uint Accept = 1;
    public const int Count = 2;
}

public static class KernelCounters
{
    public const uint RingBufferDrops = 0;
    public const uint PendingMapFull = 1;
}

[StructLayout(LayoutKind.Sequential)]
public struct RecordHeader
{
    public uint Type;
    public uint Size;
}

[StructLayout(LayoutKind.Sequential)]
public struct AcceptRecord
{
    public RecordHeader Header;
    public uint Pid;
    public uint Tid;
    public int Ret;
    public ushort ListenPort;
    public ushort Family;
    public ulong EnterNs;
    public ulong ExitNs;
    public ulong EstablishedNs;
    public ulong CgroupId;
    public Bytes16 PeerAddr;
    public ushort PeerPort;
    private ushort _pad0;
    private uint _pad1;
    public Bytes16 Comm;
}

[StructLayout(LayoutKind.Sequential)]
public struct BpfConfig
{
    public ulong WakeupBytes;
}

/// <summary>A fixed 16-byte field (addresses, task comm), usable as a span.</summary>
[InlineArray(16)]
public struct Bytes16
{
    private byte _element0;
}
