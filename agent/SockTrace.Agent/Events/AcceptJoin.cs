using System.Runtime.InteropServices;

namespace SockTrace.Agent.Events;

/// <summary>
/// Completes the kernel's accept records before they are counted: how long the connection
/// waited in the accept queue, from the ESTABLISHED record of its sock, and whether its peer
/// is a socket of this host, from the CLIENT record of the peer's endpoint (bpf/state.bpf.c).
/// The kernel writes both before the accept record they belong to, so joining them here
/// costs the hot path a ring record each instead of a hash map update and delete.
/// Records the reference model writes carry both fields already and pass unchanged.
///
/// Records that are never joined (a child that died in its queue, a client of another host's
/// server) are forgotten in generations: each table holds at most <see cref="Capacity"/>
/// entries, in two halves, the older half dropped when the newer fills or a
/// <see cref="Generation"/> has passed. Called from the ring reader's thread only.
/// </summary>
public sealed class AcceptJoin(IAcceptHandler next, TimeSpan? generation = null) : IAcceptHandler, IConnectionHandler
{
    public const int Capacity = 65536;
    public static readonly TimeSpan Generation = TimeSpan.FromMinutes(5);

    private readonly record struct Endpoint(ulong Addr0, ulong Addr1, ushort Port);

    private readonly Generations<ulong, (ulong Ns, Endpoint Peer)> _established = new(generation ?? Generation);
    private readonly Generations<Endpoint, bool> _clients = new(generation ?? Generation);
    private long _unstamped;
    private (uint Pid, ushort Port) _ignored;

    /// <summary>Accepted connections whose queue wait is unknown: no ESTABLISHED record of their
    /// sock was seen (lost to a full ring, forgotten, or the connection began before the agent).</summary>
    public long QueueWaitUnknown => Volatile.Read(ref _unstamped);

    public void OnEstablished(in EstablishedRecord r) =>
        _established.Set(r.Sock, (r.TimestampNs, EndpointOf(r.Family, r.PeerAddr, r.PeerPort)));

    public void OnClient(in ClientRecord r) => _clients.Set(EndpointOf(r.Family, r.Addr, r.Port), true);

    /// <summary>Drops the accepts of <paramref name="pid"/> from <paramref name="port"/>: the
    /// agent's own, which prove that the accept hook fires (Bpf.HookSelfTest).</summary>
    public void Ignore(uint pid, ushort port) => _ignored = (pid, port);

    public void OnAccept(in AcceptRecord r)
    {
        if (r.Pid == _ignored.Pid && r.ListenPort == _ignored.Port)
            return;
        if (r.Ret < 0 || r.Sock == 0 || (r.EstablishedNs != 0 && r.PeerLocal != 0))
        {
            next.OnAccept(in r);
            return;
        }
        var joined = r;
        var peer = EndpointOf(r.Family, r.PeerAddr, r.PeerPort);
        // The peer check: a sock's memory is reused, and a stale stamp must not be read.
        if (joined.EstablishedNs == 0)
        {
            if (_established.Take(r.Sock, out var stamp) && stamp.Peer == peer)
                joined.EstablishedNs = stamp.Ns;
            else
                Volatile.Write(ref _unstamped, _unstamped + 1);
        }
        if (joined.PeerLocal == 0 && _clients.Take(peer, out _))
            joined.PeerLocal = 1;
        next.OnAccept(in joined);
    }

    /// <summary>An IPv4 endpoint as ::ffff:a.b.c.d, so that a v4 client of a dual-stack
    /// listener (whose accepted sock is AF_INET6) matches.</summary>
    private static Endpoint EndpointOf(ushort family, in Bytes16 addr, ushort port)
    {
        ReadOnlySpan<byte> a = addr;
        if (family == PeerAddress.AfInet)
            return new Endpoint(0, 0xffff_0000UL | ((ulong)MemoryMarshal.Read<uint>(a) << 32), port);
        if (MemoryMarshal.Read<ulong>(a) == 0 && MemoryMarshal.Read<uint>(a[8..]) == 0xffff_0000u)
            return new Endpoint(0, 0xffff_0000UL | ((ulong)MemoryMarshal.Read<uint>(a[12..]) << 32), port);
        return new Endpoint(MemoryMarshal.Read<ulong>(a), MemoryMarshal.Read<ulong>(a[8..]), port);
    }

    /// <summary>A bounded table that forgets its oldest half at a time.</summary>
    private sealed class Generations<TKey, TValue>(TimeSpan generation) where TKey : notnull
    {
        private Dictionary<TKey, TValue> _current = [];
        private Dictionary<TKey, TValue> _previous = [];
        private long _startedAt = Environment.TickCount64;

        public void Set(TKey key, TValue value)
        {
            long now = Environment.TickCount64;
            if (_current.Count >= Capacity / 2 || now - _startedAt >= (long)generation.TotalMilliseconds)
            {
                (_previous, _current) = (_current, _previous);
                _current.Clear();
                _startedAt = now;
            }
            _previous.Remove(key);
            _current[key] = value;
        }

        public bool Take(TKey key, out TValue value) => _current.Remove(key, out value!) || _previous.Remove(key, out value!);
    }
}
