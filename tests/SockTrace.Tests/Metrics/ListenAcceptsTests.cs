using System.Net;
using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;
using static SockTrace.Tests.Metrics.AcceptMetricsTests;

namespace SockTrace.Tests.Metrics;

/// <summary>Accepts per listener and per worker, counted from accept records and joined to the kernel's listeners.</summary>
public sealed class ListenAcceptsTests
{
    private static AcceptRecord Accept(ulong listener, uint pid, string comm, ulong exit, uint depth = 0)
    {
        var r = Record(ret: 5, comm: comm, exit: exit);
        r.Listener = listener;
        r.Pid = pid;
        r.QueueDepth = depth;
        r.QueueLimit = 128;
        return r;
    }

    private static ListenQueue Kernel(ulong sock, ulong queuesNs = 0, uint depth = 0) =>
        new(sock, 1, 4026531840, 8080, IPAddress.Any, 0, 0, 0, 0, depth, 128, 0, queuesNs);

    [Fact]
    public void AcceptsAndWorkersComeFromTheRecordsAndTheLaterQueuesWin()
    {
        var accepts = new ListenAccepts();
        accepts.OnAccept(Accept(0xa, 100, "nginx", exit: 10, depth: 3));
        accepts.OnAccept(Accept(0xa, 101, "nginx", exit: 20, depth: 2));
        accepts.OnAccept(Accept(0xa, 100, "nginx", exit: 30, depth: 1));
        accepts.OnAccept(Accept(0xb, 100, "nginx", exit: 40, depth: 9));

        var merged = accepts.Merge([Kernel(0xa, queuesNs: 25, depth: 7), Kernel(0xb, queuesNs: 50, depth: 4)]);

        Assert.Equal([(0xaUL, 3UL, 1u), (0xbUL, 1UL, 4u)], merged.Select(q => (q.Sock, q.Accepts, q.Depth)));
        var workers = accepts.Workers(merged);
        Assert.Equal([(0xaUL, 100u, 2UL, 10UL), (0xaUL, 101u, 1UL, 20UL), (0xbUL, 100u, 1UL, 40UL)],
            workers.OrderBy(w => w.Sock).ThenBy(w => w.Tgid).Select(w => (w.Sock, w.Tgid, w.Accepts, w.FirstNs)));
    }

    [Fact]
    public void AListenerTheKernelNoLongerHasIsForgottenWithItsWorkers()
    {
        var accepts = new ListenAccepts();
        accepts.OnAccept(Accept(0xa, 100, "nginx", exit: 10));
        accepts.OnAccept(Accept(0xb, 100, "nginx", exit: 10));

        accepts.Merge([Kernel(0xb)]);
        var merged = accepts.Merge([Kernel(0xa), Kernel(0xb)]);

        Assert.Equal([0UL, 1UL], merged.Select(q => q.Accepts));
        Assert.Single(accepts.Workers(merged));
    }

    [Fact]
    public void FailedCallsAndRecordsWithoutAListenerCountNothing()
    {
        var accepts = new ListenAccepts();
        var failed = Accept(0xa, 100, "nginx", exit: 10);
        failed.Ret = -11;
        accepts.OnAccept(failed);
        accepts.OnAccept(Accept(0, 100, "model", exit: 10));

        Assert.Equal(0UL, Assert.Single(accepts.Merge([Kernel(0xa)])).Accepts);
    }
}
