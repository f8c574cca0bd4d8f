using SockTrace.Agent.Bpf;
using SockTrace.Tests.Support;
using Xunit.Abstractions;

namespace SockTrace.Tests.Kernel;

/// <summary>
/// Listen overflows, counted by the listen_overflow hook: kprobes only (no tracepoint
/// exists where the kernel counts them). Category Kprobe: run by tests/vm/matrix.sh on
/// kernels that have kprobes, never on a host that lacks them, where it would fail.
/// </summary>
[Trait("Category", "Kprobe")]
public sealed class ListenOverflowTests(ITestOutputHelper output)
{
    /// <summary>
    /// Backlog 1: the queue holds two (sk_acceptq_is_full() is "more than the backlog"), so a
    /// third client's SYN overflows it, once per SYN it sends until it is closed. The count
    /// equals the namespace's own ListenOverflows, which nothing else in that namespace adds
    /// to. The hook needs kprobes (README, "Attach modes"), so this test runs where they
    /// exist (the kernel matrix, in both modes) and fails when the hook is not attached.
    /// </summary>
    [Fact]
    public void OverflowsOfAListenerInAnotherNamespace()
    {
        using var veth = new VethPair();
        using var pipeline = new KernelPipeline();
        var plan = pipeline.Plan.Single(p => p.Hook == Hooks.ListenOverflow);
        Assert.True(plan.Mode is not null, $"the listen_overflow hook is not attached ({plan.Why}): it needs kprobes, which this kernel lacks; this test runs in the kernel matrix (tests/vm/matrix.sh)");
        using var listener = VethPair.In(veth.NamespaceA, () => ListenQueueTests.Listen(1));
        int port = listener.Port();
        var queued = Enumerable.Range(0, 2).Select(_ => VethPair.In(veth.NamespaceB, () => ListenQueueTests.Connect(port, blocking: true))).ToList();
        Eventually.True(() => ListenQueueTests.RecvQ(veth.NamespaceA, port) == 2, "two connections in the accept queue (ss -lnt)");

        using (var refused = VethPair.In(veth.NamespaceB, () => ListenQueueTests.Connect(port, blocking: false)))
            Eventually.True(() => ListenQueueTests.ListenOverflows(veth.NamespaceA) >= 1, "ListenOverflows in the listener's namespace");
        // Closed: no SYN is sent again, so the count stands still from here.
        Thread.Sleep(200);

        string netns = ListenQueueTests.Inode(veth.NamespaceA);
        long kernel = 0;
        (long? Overflows, long? Depth, long? Limit) seen = default;
        Eventually.True(() =>
        {
            kernel = ListenQueueTests.ListenOverflows(veth.NamespaceA);
            seen = pipeline.ScrapeListen(netns, port);
            return kernel == ListenQueueTests.ListenOverflows(veth.NamespaceA);
        }, "a stable ListenOverflows");
        output.WriteLine($"netns {netns} port {port}, hook listen_overflow in mode {plan.Mode?.Name() ?? "-"} ({plan.Why}): kernel ListenOverflows {kernel}, socktrace_listen_overflows_total {seen.Overflows}, depth {seen.Depth}, limit {seen.Limit}");
        Assert.InRange(kernel, 1, 1000);
        Assert.Equal(kernel, seen.Overflows);
        // Each overflow saw the full queue: two waiting, backlog 1.
        Assert.Equal(2, seen.Depth);
        Assert.Equal(1, seen.Limit);
        queued.ForEach(c => c.Dispose());
    }
}
