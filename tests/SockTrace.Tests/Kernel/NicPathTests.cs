using Xunit.Abstractions;
using System.Net;
using System.Net.Sockets;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>
/// A real NIC driver's receive path. Runs only in the qemu guest (tests/vm/run-in-vm.sh
/// --nic HOST:GUEST), which has an e1000 NIC as eth0 and sets SOCKTRACE_TEST_NIC_PORT, while a
/// process on the host connects to the forwarded port every second and sends bytes.
/// </summary>
[Trait("Category", "Nic")]
[Collection(MetricsCollection.Name)]
public sealed class NicPathTests(ITestOutputHelper output)
{
    [Fact]
    public async Task BytesFromOutsideTheGuestAreCountedOnEth0AsNicAndThePeerIsRemote()
    {
        if (!int.TryParse(Environment.GetEnvironmentVariable("SOCKTRACE_TEST_NIC_PORT"), out int port))
            Assert.Fail("SOCKTRACE_TEST_NIC_PORT is not set: this test runs in the qemu guest with an e1000 NIC and a host sender (tests/vm/run-in-vm.sh --nic)");
        using var pipeline = new KernelPipeline();
        var before = pipeline.ScrapeRxBytes();
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Any, port));
        listener.Listen();

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        using var accepted = await listener.AcceptAsync(timeout.Token);
        long received = RxPathTests.ReadToEnd(accepted);

        var after = pipeline.ScrapeRxBytes();
        long rise = RxPathTests.Rise(before, after, ("nic", "eth0"));
        output.WriteLine($"nic test: read {received} bytes; nic/eth0 rose by {rise}; lo rose by {RxPathTests.Rise(before, after, ("loopback", "lo"))}; rx mode {pipeline.Source.Probes.Single(p => p.Hook == "rx").Mode}");
        Assert.True(received > 0, "the host sender sent nothing");
        // tests/vm/matrix.sh says how much each of its connections carries.
        if (long.TryParse(Environment.GetEnvironmentVariable("SOCKTRACE_TEST_NIC_BYTES"), out long sent))
            Assert.Equal(sent, received);
        Assert.True(rise >= received, $"nic/eth0 rose by {rise}, read {received}");
        pipeline.AssertOneAccept(port, "remote");
    }

    /// <summary>The host sender's bytes reach a socket once, as nic, and are no loopback pair.
    /// The guest's own namespace carries nothing else over eth0; the listener is closed as soon
    /// as it has given up one connection, so that no second one is delivered bytes meanwhile.</summary>
    [Fact]
    public async Task BytesFromOutsideTheGuestAreDeliveredOnceAsNicAndAreNoLocalPair()
    {
        if (!int.TryParse(Environment.GetEnvironmentVariable("SOCKTRACE_TEST_NIC_PORT"), out int port))
            Assert.Fail("SOCKTRACE_TEST_NIC_PORT is not set: this test runs in the qemu guest with an e1000 NIC and a host sender (tests/vm/run-in-vm.sh --nic)");
        using var pipeline = new KernelPipeline();
        var netns = uint.Parse(new FileInfo("/proc/self/ns/net").LinkTarget!.AsSpan(5)[..^1], System.Globalization.CultureInfo.InvariantCulture);
        var before = DeliveryPathTests.Deliveries(pipeline, netns).GetValueOrDefault("nic");
        ulong pairsBefore = LocalPairBytes(pipeline, netns);
        Socket accepted;
        using (var listener = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            listener.Bind(new IPEndPoint(IPAddress.Any, port));
            listener.Listen(1);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            accepted = await listener.AcceptAsync(timeout.Token);
        }
        using (accepted)
        {
            long received = RxPathTests.ReadToEnd(accepted);
            var (_, segments, _) = DeliveryPathTests.TcpInfo(accepted);
            var after = DeliveryPathTests.Deliveries(pipeline, netns).GetValueOrDefault("nic");
            output.WriteLine($"nic delivery: read {received} bytes in {segments} segments (tcp_info); delivered on nic rose by {after.Bytes - before.Bytes} bytes, {after.Segments - before.Segments} segments; delivery mode {pipeline.Source.Probes.Single(p => p.Hook == "delivery").Mode}");
            Assert.True(received > 0, "the host sender sent nothing");
            if (long.TryParse(Environment.GetEnvironmentVariable("SOCKTRACE_TEST_NIC_BYTES"), out long sent))
                Assert.Equal(sent, received);
            Assert.Equal(((ulong)received, segments), (after.Bytes - before.Bytes, after.Segments - before.Segments));
            Assert.Equal(pairsBefore, LocalPairBytes(pipeline, netns));
        }
    }

    private static ulong LocalPairBytes(KernelPipeline pipeline, uint netns) =>
        (ulong)pipeline.Source.Deliveries.ReadLocalPairs().Where(p => p.Netns == netns).Sum(p => (long)p.Bytes);
}
