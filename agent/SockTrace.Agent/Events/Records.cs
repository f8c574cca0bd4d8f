using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SockTrace.Agent.Events;

// C# twins of bpf/socktrace.h. Layout must match byte for byte:
// tests/SockTrace.Tests/Events/RecordLayoutTests.cs compiles the header and compares.

public static class RecordTypes
{
    public const uint Accept = 1;
    public const uint FdRace = 2;
    public const uint Established = 3;
    public const uint Client = 4;
    public const int Count = 5;
}

/// <summary>st_fd_race_record.kind, and the `kind` label each becomes.</summary>
public static class RaceKinds
{
    public const uint Dup2Busy = 1;
    public const uint InstallOverwrite = 2;
    public const uint DoubleClose = 3;

    public static string Label(uint kind) => kind switch
    {
        Dup2Busy => "dup2_busy",
        InstallOverwrite => "install_overwrite",
        DoubleClose => "double_close",
        _ => "unknown",
    };
}

public static class KernelCounters
{
    public const uint RingBufferDrops = 0;
    public const uint PendingMapFull = 1;
    public const uint RecordsProduced = 2;
    public const uint NoEntry = 3;
    public const uint ReturnMissed = 4;
    public const uint ErrorsLost = 5;
    public const uint UringFixed = 6;
}

/// <summary>The reason label of socktrace_untracked_calls_total.</summary>
public static class UntrackedReasons
{
    /// <summary>The call's in-flight entry could not be stored (ST_COUNTER_PENDING_FULL).</summary>
    public const string MapFull = "map_full";

    /// <summary>An accept returned and found no entry: it began before the programs were
    /// attached, or its entry was evicted from the full LRU map (ST_COUNTER_NO_ENTRY).</summary>
    public const string NoEntry = "no_entry";

    /// <summary>An accept began while its thread's previous call still had an entry: that
    /// call's return was never seen (ST_COUNTER_RETURN_MISSED).</summary>
    public const string ReturnMissed = "return_missed";

    /// <summary>A failed accept found the kernel's error counts full (ST_COUNTER_ERRORS_LOST).</summary>
    public const string ErrorsLost = "errors_lost";

    /// <summary>An io_uring accept on a listener in, or into, the ring's fixed files (ST_COUNTER_URING_FIXED).</summary>
    public const string UringFixedFile = "io_uring_fixed_file";
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
    /// <summary>1 when the connecting socket is on this host (any network namespace).</summary>
    public ushort PeerLocal;
    /// <summary>The listener's network namespace (inode number).</summary>
    public uint Netns;
    public Bytes16 Comm;
    /// <summary>When another thread of the process last closed the fd accept returned
    /// (CLOCK_MONOTONIC ns); 0 when none did.</summary>
    public ulong FdClosedNs;
    /// <summary>The listening sock's kernel address: an identity, never a label; 0 unknown.</summary>
    public ulong Listener;
    /// <summary>The accepted sock's kernel address, to join its <see cref="EstablishedRecord"/>.</summary>
    public ulong Sock;
    public uint QueueDepth;
    public uint QueueLimit;
    public uint SynQueue;
    private uint _pad0;
}

/// <summary>A passive open's child became ESTABLISHED, waiting in the accept queue.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct EstablishedRecord
{
    public RecordHeader Header;
    public ulong Sock;
    public ulong TimestampNs;
    public Bytes16 PeerAddr;
    public ushort PeerPort;
    public ushort Family;
    private uint _pad0;
}

/// <summary>A client socket of this host completed its connect().</summary>
[StructLayout(LayoutKind.Sequential)]
public struct ClientRecord
{
    public RecordHeader Header;
    public Bytes16 Addr;
    public ushort Port;
    public ushort Family;
    private uint _pad0;
}

/// <summary>Key of st_accept_errors: failed accepts counted in the kernel.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct AcceptErrorKey
{
    public ulong CgroupId;
    public ushort ListenPort;
    public ushort Errno;
    private uint _pad0;
    public Bytes16 Comm;

    /// <summary>The key's fields as one value, for dictionaries (a struct's own equality reflects).</summary>
    internal readonly (ulong, ushort, ushort, ulong, ulong) Id()
    {
        ReadOnlySpan<byte> comm = Comm;
        return (CgroupId, ListenPort, Errno, MemoryMarshal.Read<ulong>(comm), MemoryMarshal.Read<ulong>(comm[8..]));
    }
}

/// <summary>A slot of st_error_cache: a key and its count on one CPU; count 0: free.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct AcceptErrorSlot
{
    public AcceptErrorKey Key;
    public ulong Count;
}

[StructLayout(LayoutKind.Sequential)]
public struct FdRaceRecord
{
    public RecordHeader Header;
    public uint Pid;
    public uint Tid;
    public int Fd;
    public uint Kind;
    public ulong TimestampNs;
    public ulong CgroupId;
    /// <summary>double_close: time since <see cref="OtherTid"/> closed the fd.</summary>
    public ulong GapNs;
    /// <summary>double_close: the thread that closed the fd first.</summary>
    public uint OtherTid;
    private uint _pad0;
    public Bytes16 Comm;
}

/// <summary>st_config.flags (bpf/socktrace.h).</summary>
[Flags]
public enum BpfConfigFlags : uint
{
    None = 0,
    /// <summary>bpf_rdonly_cast (6.2): kernel memory read by plain loads.</summary>
    Casts = 1,
    /// <summary>BPF_MAP_TYPE_TASK_STORAGE (5.11): per-thread and per-process state.</summary>
    TaskStorage = 2,
    /// <summary>The delivery hook is attached.</summary>
    Delivery = 4,
    /// <summary>The rx hook is attached.</summary>
    RxDevices = 8,
}

[StructLayout(LayoutKind.Sequential)]
public struct BpfConfig
{
    public ulong WakeupBytes;
    public ulong DoubleCloseWindowNs;
    public BpfConfigFlags Flags;
    /// <summary>The agent's pid: its own calls prove that the hooks fire (st_self_seen).</summary>
    public uint SelfTgid;
}

/// <summary>A fixed 16-byte field (addresses, task comm), usable as a span.</summary>
[InlineArray(16)]
public struct Bytes16
{
    private byte _element0;
}
