using System.Runtime.CompilerServices;
using SockTrace.Agent.Events;
using static SockTrace.Tests.Metrics.AcceptMetricsTests;

namespace SockTrace.Tests.Events;

/// <summary>The kernel's accept records completed from the records of their connections.</summary>
public sealed class AcceptJoinTests
{
    private sealed class Last : IAcceptHandler
    {
        public List<AcceptRecord> Seen { get; } = [];

        public void OnAccept(in AcceptRecord record) => Seen.Add(record);
    }

    private readonly Last _next = new();

    private static AcceptRecord Accepted(ulong sock, byte[] peer, ushort peerPort, ushort family = 2)
    {
        var r = Record(ret: 5, exit: 900_000);
        r.Sock = sock;
        r.Family = family;
        r.PeerPort = peerPort;
        peer.CopyTo((Span<byte>)r.PeerAddr);
        return r;
    }

    private static EstablishedRecord Established(ulong sock, ulong ns, byte[] peer, ushort peerPort, ushort family = 2)
    {
        var r = new EstablishedRecord { Header = new RecordHeader { Type = RecordTypes.Established, Size = (uint)Unsafe.SizeOf<EstablishedRecord>() }, Sock = sock, TimestampNs = ns, PeerPort = peerPort, Family = family };
        peer.CopyTo((Span<byte>)r.PeerAddr);
        return r;
    }

    private static ClientRecord Client(byte[] addr, ushort port, ushort family = 2)
    {
        var r = new ClientRecord { Header = new RecordHeader { Type = RecordTypes.Client, Size = (uint)Unsafe.SizeOf<ClientRecord>() }, Port = port, Family = family };
        addr.CopyTo((Span<byte>)r.Addr);
        return r;
    }

    private static readonly byte[] Pod = [10, 1, 2, 3];

    [Fact]
    public void TheQueueWaitComesFromTheSocksEstablishedRecordAndIsTakenOnce()
    {
        var join = new AcceptJoin(_next);
        join.OnEstablished(Established(0xffff1, 400_000, Pod, 41000));

        join.OnAccept(Accepted(0xffff1, Pod, 41000));
        join.OnAccept(Accepted(0xffff1, Pod, 41000));

        Assert.Equal([400_000UL, 0UL], _next.Seen.Select(r => r.EstablishedNs));
        Assert.Equal(1, join.QueueWaitUnknown);
    }

    [Fact]
    public void AStampOfAnotherConnectionAtTheSameSockIsNotTaken()
    {
        var join = new AcceptJoin(_next);
        // The sock's memory held another connection before: a different peer.
        join.OnEstablished(Established(0xffff1, 400_000, Pod, 41001));

        join.OnAccept(Accepted(0xffff1, Pod, 41000));

        Assert.Equal(0UL, Assert.Single(_next.Seen).EstablishedNs);
        Assert.Equal(1, join.QueueWaitUnknown);
    }

    [Fact]
    public void APeerThatConnectedFromThisHostIsLocalAlsoAsAV4MappedAddress()
    {
        var join = new AcceptJoin(_next);
        join.OnClient(Client(Pod, 41000));
        join.OnClient(Client([10, 9, 9, 9], 41000));
        byte[] mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 9, 9, 9];

        join.OnAccept(Accepted(1, Pod, 41000));
        join.OnAccept(Accepted(2, mapped, 41000, family: 10));
        join.OnAccept(Accepted(3, [10, 7, 7, 7], 41000));

        Assert.Equal([1, 1, 0], _next.Seen.Select(r => (int)r.PeerLocal));
    }

    [Fact]
    public void RecordsThatCarryTheirJoinPassUnchanged()
    {
        var join = new AcceptJoin(_next);
        var model = Accepted(1, Pod, 41000);
        model.EstablishedNs = 123;
        model.PeerLocal = 1;
        var failed = Record(ret: -11);

        join.OnAccept(model);
        join.OnAccept(failed);

        Assert.Equal([(123UL, (ushort)1, 5), (0UL, (ushort)0, -11)], _next.Seen.Select(r => (r.EstablishedNs, r.PeerLocal, r.Ret)));
        Assert.Equal(0, join.QueueWaitUnknown);
    }

    [Fact]
    public void RecordsNeverJoinedAreForgottenTwoGenerationsLater()
    {
        var join = new AcceptJoin(_next);
        join.OnEstablished(Established(7, 100, Pod, 1));
        // Each table turns over after half its capacity of new entries: two turns drop the first.
        for (ulong sock = 100; sock < 100 + AcceptJoin.Capacity; sock++)
            join.OnEstablished(Established(sock, 200, Pod, 2));

        join.OnAccept(Accepted(7, Pod, 1));
        join.OnAccept(Accepted(100 + AcceptJoin.Capacity - 1, Pod, 2));

        Assert.Equal([0UL, 200UL], _next.Seen.Select(r => r.EstablishedNs));
    }
}
