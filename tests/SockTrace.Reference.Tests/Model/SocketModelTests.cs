using System.Runtime.InteropServices;
using SockTrace.Agent.Events;

namespace SockTrace.Reference.Tests.Model;

public sealed class SocketModelTests
{
    private static ModelRun Run(string steps, int? nofile = null) =>
        ModelRun.Execute(Scenario.Parse($"{{{(nofile is { } n ? $"\"nofile\": {n}," : "")} \"steps\": [{steps}]}}"));

    private static AcceptRecord[] Accepts(ModelRun run) =>
        [.. run.Records.Where(r => r.Length == Marshal.SizeOf<AcceptRecord>()).Select(r => MemoryMarshal.Read<AcceptRecord>(r))];

    private static FdRaceRecord[] Races(ModelRun run) =>
        [.. run.Records.Where(r => r.Length == Marshal.SizeOf<FdRaceRecord>()).Select(r => MemoryMarshal.Read<FdRaceRecord>(r))];

    [Fact]
    public void QueueWaitIsTheVirtualTimeBetweenHandshakeAndAccept()
    {
        var run = Run("""
            {"op": "listen", "name": "l"},
            {"op": "connect", "to": "l"},
            {"op": "wait", "ms": 40},
            {"op": "accept", "on": "l"}
            """);

        var accept = Assert.Single(Accepts(run));
        Assert.Equal(5, accept.Ret);
        Assert.Equal(40_000_000UL, accept.ExitNs - accept.EstablishedNs);
        Assert.Equal(0UL, accept.ExitNs - accept.EnterNs);
        Assert.Equal(18080, accept.ListenPort);
        Assert.Equal(PeerClass.Loopback, PeerAddress.Classify(accept.Family, accept.PeerAddr));
    }

    [Fact]
    public void ABlockingAcceptSleepsHoldingItsFdUntilAConnectionArrives()
    {
        var run = Run("""
            {"op": "listen", "name": "l"},
            {"op": "accept", "on": "l", "thread": "w"},
            {"op": "wait", "ms": 50},
            {"op": "connect", "to": "l"}
            """);

        Assert.True(run.Outcomes[1].Blocked);
        Assert.Equal(4, run.Outcomes[1].Reserved);
        Assert.Equal(4, run.Outcomes[1].Ret);
        Assert.Equal(5, run.Outcomes[3].Ret);
        var accept = Assert.Single(Accepts(run));
        Assert.Equal(50_000_000UL, accept.ExitNs - accept.EnterNs);
        Assert.Equal(accept.ExitNs, accept.EstablishedNs);
    }

    [Fact]
    public void AnEmptyNonBlockingListenerIsEagainAndReleasesTheFd()
    {
        var run = Run("""
            {"op": "listen", "name": "l", "blocking": false},
            {"op": "accept", "on": "l"},
            {"op": "connect", "to": "l"}
            """);

        Assert.Equal(-Errno.EAGAIN, run.Outcomes[1].Ret);
        Assert.Equal(4, run.Outcomes[2].Ret);
        var accept = Assert.Single(Accepts(run));
        Assert.Equal(-Errno.EAGAIN, accept.Ret);
        Assert.Equal(0, accept.Family);
        Assert.Equal(0UL, accept.EstablishedNs);
    }

    [Fact]
    public void NoFdBelowTheLimitIsEmfileEvenWithAConnectionQueued()
    {
        var run = Run("""
            {"op": "listen", "name": "l"},
            {"op": "connect", "to": "l"},
            {"op": "accept", "on": "l"}
            """, nofile: 5);

        Assert.Equal(-Errno.EMFILE, Assert.Single(Accepts(run)).Ret);
    }

    [Fact]
    public void Dup2OntoAReservedFdIsEbusyAndReportedAsARace()
    {
        var run = Run("""
            {"op": "listen", "name": "l"},
            {"op": "accept", "name": "a", "on": "l", "thread": "w"},
            {"op": "dup2", "old": "l", "new": "a"},
            {"op": "connect", "to": "l"}
            """);

        Assert.Equal(-Errno.EBUSY, run.Outcomes[2].Ret);
        var race = Assert.Single(Races(run));
        Assert.Equal(RaceKinds.Dup2Busy, race.Kind);
        Assert.Equal(4, race.Fd);
        Assert.Equal(4, run.Outcomes[1].Ret);
    }

    [Fact]
    public void AnFdClosedByAnotherThreadAndAcceptedLaterCarriesTheCloseAndIsNoRace()
    {
        var run = Run("""
            {"op": "listen", "name": "l"},
            {"op": "connect", "to": "l"},
            {"op": "accept", "name": "a", "on": "l"},
            {"op": "connect", "to": "l"},
            {"op": "close", "fd": "a", "thread": "closer"},
            {"op": "wait", "ms": 3},
            {"op": "accept", "on": "l"}
            """);

        Assert.Empty(Races(run));
        var reused = Accepts(run)[1];
        Assert.Equal(5, reused.Ret);
        Assert.Equal(3_000_000UL, reused.ExitNs - reused.FdClosedNs);
        Assert.Equal(0UL, Accepts(run)[0].FdClosedNs);
    }

    [Fact]
    public void ACloseTheSameThreadMadeIsNoReuseGapAndIsConsumedByTheAccept()
    {
        var run = Run("""
            {"op": "listen", "name": "l"},
            {"op": "connect", "to": "l"},
            {"op": "accept", "name": "a", "on": "l"},
            {"op": "connect", "to": "l"},
            {"op": "close", "fd": "a"},
            {"op": "accept", "name": "b", "on": "l"},
            {"op": "close", "fd": "b", "thread": "other"},
            {"op": "close", "fd": "b"}
            """);

        Assert.Equal([0UL, 0UL], Accepts(run).Select(a => a.FdClosedNs));
        // The second close of fd 5 fails with EBADF right after another thread closed it.
        var race = Assert.Single(Races(run));
        Assert.Equal((RaceKinds.DoubleClose, 5, 4242u, 4243u), (race.Kind, race.Fd, race.Tid, race.OtherTid));
    }

    [Fact]
    public void AnEbadfCloseIsADoubleCloseOnlyAfterAnotherThreadsCloseWithinTheWindow()
    {
        var run = Run("""
            {"op": "listen", "name": "l"},
            {"op": "connect", "name": "c", "to": "l"},
            {"op": "connect", "to": "l"},
            {"op": "accept", "on": "l"},
            {"op": "close", "fd": "c", "thread": "a"},
            {"op": "close", "fd": "c", "thread": "a", "expect": "EBADF"},
            {"op": "close", "fd": 9, "thread": "b", "expect": "EBADF"},
            {"op": "close", "fd": "c", "thread": "b", "expect": "EBADF"},
            {"op": "wait", "ms": 1001},
            {"op": "close", "fd": "c", "thread": "c", "expect": "EBADF"}
            """);

        var race = Assert.Single(Races(run));
        Assert.Equal((RaceKinds.DoubleClose, 4, 4244u, 4243u), (race.Kind, race.Fd, race.Tid, race.OtherTid));
        Assert.Equal(0UL, race.GapNs);
    }

    [Fact]
    public void DeliveryIsCountedByPath()
    {
        var run = Run("""
            {"op": "listen", "name": "l", "address": "any"},
            {"op": "connect", "name": "c", "to": "l", "via": "nic"},
            {"op": "connect", "name": "d", "to": "l"},
            {"op": "send", "fd": "c", "bytes": 100},
            {"op": "send", "fd": "d", "bytes": 7},
            {"op": "accept", "name": "a", "on": "l"},
            {"op": "recv", "fd": "a", "bytes": 100}
            """);

        Assert.Equal(100, run.Delivered["nic"]);
        Assert.Equal(7, run.Delivered["loopback"]);
        Assert.Equal(PeerClass.Remote, PeerAddress.Classify(Accepts(run)[0].Family, Accepts(run)[0].PeerAddr));
    }

    [Theory]
    [InlineData("""{"op": "accept", "on": "nope"}""", "names no fd")]
    [InlineData("""{"op": "listen", "name": "l"}, {"op": "accept", "on": "l", "thread": "w"}""", "still asleep")]
    [InlineData("""{"op": "listen", "name": "l"}, {"op": "accept", "on": "l", "thread": "w"}, {"op": "close", "fd": 1, "thread": "w"}""", "is asleep in accept")]
    [InlineData("""{"op": "listen", "name": "l"}, {"op": "connect", "to": "l", "via": "nic"}""", "cannot be reached")]
    [InlineData("""{"op": "listen", "name": "l", "backlog": 0}, {"op": "connect", "to": "l"}, {"op": "connect", "to": "l"}""", "is full")]
    [InlineData("""{"op": "listen", "name": "l", "expect": 4}""", "expects 4")]
    [InlineData("""{"op": "frobnicate"}""", "unknown op")]
    public void WhatTheModelDoesNotModelIsAnError(string steps, string message)
    {
        var ex = Assert.Throws<ScenarioException>(() => Run(steps));
        Assert.Contains(message, ex.Message);
    }
}
