namespace SockTrace.Agent.Events;

public enum PeerClass : byte
{
    Loopback,
    Remote,
    Local,
}

public static class PeerAddress
{
    internal const ushort AfInet = 2;
    internal const ushort AfInet6 = 10;

    /// <summary>Loopback: 127.0.0.0/8, ::1, or 127.0.0.0/8 mapped into IPv6. Local: any other
    /// peer whose connecting socket the kernel saw on this host (<paramref name="onThisHost"/>,
    /// st_accept_record.peer_local), in whatever network namespace. Remote: the rest.</summary>
    public static PeerClass Classify(ushort family, ReadOnlySpan<byte> addr, bool onThisHost = false)
    {
        var peer = ClassifyAddress(family, addr);
        return peer == PeerClass.Remote && onThisHost ? PeerClass.Local : peer;
    }

    private static PeerClass ClassifyAddress(ushort family, ReadOnlySpan<byte> addr)
    {
        if (family == AfInet)
            return addr[0] == 127 ? PeerClass.Loopback : PeerClass.Remote;
        if (family == AfInet6)
        {
            if (addr[..15].IndexOfAnyExcept((byte)0) < 0 && addr[15] == 1)
                return PeerClass.Loopback;
            bool v4Mapped = addr[..10].IndexOfAnyExcept((byte)0) < 0 && addr[10] == 0xff && addr[11] == 0xff;
            if (v4Mapped && addr[12] == 127)
                return PeerClass.Loopback;
        }
        return PeerClass.Remote;
    }

    public static string Label(PeerClass peer) => peer switch
    {
        PeerClass.Loopback => "loopback",
        PeerClass.Local => "local",
        _ => "remote",
    };
}
