using System.Net;
using System.Runtime.InteropServices;

namespace SockTrace.Agent.Events;

// C# twin of st_listen_value in bpf/socktrace.h (checked by RecordLayoutTests); the map's
// key is the listener's struct sock address, a ulong.

[StructLayout(LayoutKind.Sequential)]
public unsafe struct ListenValue
{
    public ulong Overflows;
    public ulong SynDrops;
    public ulong Cookies;
    public ulong QueuesNs;
    public ulong DropsSeen;
    public ulong SeenNs;
    public fixed byte Addr[16];
    public uint Netns;
    public ushort Port;
    public ushort Family;
    public uint Depth;
    public uint Limit;
    public uint SynQueue;
    private uint _pad0;

    /// <summary>The bound address (0.0.0.0 and :: for a wildcard listener).</summary>
    public readonly IPAddress Address()
    {
        fixed (byte* a = Addr)
            return Family == PeerAddress.AfInet6 ? new IPAddress(new ReadOnlySpan<byte>(a, 16)) : new IPAddress(new ReadOnlySpan<byte>(a, 4));
    }
}

/// <summary>The accepts of one process (<paramref name="Tgid"/>, an identity, never a label)
/// from one listening socket, since its first at <paramref name="FirstNs"/>.</summary>
public readonly record struct ListenWorker(ulong Sock, uint Tgid, string Comm, ulong FirstNs, ulong Accepts);

/// <summary>One listening socket: <paramref name="Sock"/> is its kernel address (an identity,
/// never a label), <paramref name="SeenNs"/> when the kernel first saw it, then its network namespace (inode number), port and bound address, what
/// was counted on it, and its queues when last looked at (at <paramref name="QueuesNs"/>, 0 never).</summary>
public readonly record struct ListenQueue(
    ulong Sock, ulong SeenNs, uint Netns, ushort Port, IPAddress Address,
    ulong Overflows, ulong SynDrops, ulong Cookies, ulong Accepts,
    uint Depth, uint Limit, uint SynQueue, ulong QueuesNs = 0);
