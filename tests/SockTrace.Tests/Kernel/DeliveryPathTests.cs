using Xunit.Abstractions;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using SockTrace.Agent.Bpf;
using SockTrace.Agent.Events;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>
/// Bytes delivered to sockets, by path, on the real kernel (bpf/delivery.bpf.c). Every test
/// runs in network namespaces it makes and reads the counters of those namespaces only, so
/// other traffic on the host cannot change the numbers: each is exact. Segments are checked
/// against what each socket's own tcp_info says it received.
/// </summary>
[Trait("Category", "Kernel")]
[Collection(MetricsCollection.Name)]
public sealed class DeliveryPathTests(ITestOutputHelper output)
{
    private const int Up = 1_000_003;
    private const int Down = 300_007;

    [Fact]
    public void LoopbackBytesCountOnceAsLoopbackAndAsALocalPair()
    {
        using var pipeline = new KernelPipeline();
        Assert.Equal(KernelPipeline.ExpectedMode(Hooks.Delivery), pipeline.Source.Probes.Single(p => p.Hook == "delivery").Mode);
        using var ns = new BridgeTopology(bridged: false);
        uint netns = BridgeTopology.Inode(ns.Server);

        var x = Exchange(ns.Server, ns.Server, IPAddress.Loopback);

        var delivered = Deliveries(pipeline, netns);
        output.WriteLine($"loopback: {Describe(delivered)}; tcp_info {x}");
        AssertDelivered("loopback", Up + Down, x.Server + x.Client, delivered);
        // Both directions, under the listener's port and the connecting process.
        var pair = Assert.Single(pipeline.Source.Deliveries.ReadLocalPairs(), p => p.Netns == netns);
        Assert.Equal((x.Port, File.ReadAllText("/proc/self/comm").Trim(), (ulong)(Up + Down)), (pair.Port, pair.Comm, pair.Bytes));
    }

    /// <summary>
    /// The sidecar and application shape: two processes talking over loopback. A python3 client
    /// streams <see cref="Up"/> bytes to the test's listener and reads the <see cref="Down"/>
    /// bytes of the answer: one local pair, under the listener's port and the client's name,
    /// holding both directions exactly.
    /// </summary>
    [Fact]
    public void ALoopbackStreamBetweenTwoProcessesIsOneLocalPairUnderTheClientsName()
    {
        using var pipeline = new KernelPipeline();
        using var ns = new BridgeTopology(bridged: false);
        uint netns = BridgeTopology.Inode(ns.Server);
        using var listener = VethPair.In(ns.Server, () => Loopback.Listen());
        int port = listener.Port();
        var info = new System.Diagnostics.ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { "netns", "exec", ns.Server, "python3", "-c", $$"""
            import socket
            c = socket.create_connection(("127.0.0.1", {{port}}))
            c.sendall(b"u" * {{Up}})
            c.shutdown(socket.SHUT_WR)
            n = 0
            while True:
                b = c.recv(65536)
                if not b:
                    break
                n += len(b)
            print(n)
            """ })
            info.ArgumentList.Add(a);
        using var client = System.Diagnostics.Process.Start(info)!;
        using (var accepted = listener.Accept())
        {
            Assert.Equal(Up, RxPathTests.ReadToEnd(accepted));
            Send(accepted, Down);
            accepted.Shutdown(SocketShutdown.Send);
            Assert.True(client.WaitForExit(TimeSpan.FromSeconds(60)), "the client did not finish");
        }
        Assert.True(client.ExitCode == 0, client.StandardError.ReadToEnd());
        Assert.Equal(Down.ToString(System.Globalization.CultureInfo.InvariantCulture), client.StandardOutput.ReadToEnd().Trim());

        var pair = Assert.Single(pipeline.Source.Deliveries.ReadLocalPairs(), p => p.Netns == netns);
        output.WriteLine($"local pair: port {pair.Port}, comm {pair.Comm}, {pair.Bytes} bytes");
        Assert.Equal(((ushort)port, "python3", (ulong)(Up + Down)), (pair.Port, pair.Comm, pair.Bytes));
    }

    [Fact]
    public void VethBytesCountOnceAsVirtualInTheReceivingNamespaceAndAreNoLocalPair()
    {
        using var pipeline = new KernelPipeline();
        using var veth = new VethPair();
        uint server = BridgeTopology.Inode(veth.NamespaceA), client = BridgeTopology.Inode(veth.NamespaceB);

        var x = Exchange(veth.NamespaceA, veth.NamespaceB, VethPair.AddressA);

        var atServer = Deliveries(pipeline, server);
        var atClient = Deliveries(pipeline, client);
        output.WriteLine($"veth: server {Describe(atServer)}, client {Describe(atClient)}");
        AssertDelivered("virtual", Up, x.Server, atServer);
        AssertDelivered("virtual", Down, x.Client, atClient);
        // Another network namespace with its own stack is not a loopback pair.
        Assert.DoesNotContain(pipeline.Source.Deliveries.ReadLocalPairs(), p => p.Netns == server || p.Netns == client);
    }

    [Fact]
    public void BytesThroughABridgeCountOnceThoughEveryDeviceOnTheWayCountsThem()
    {
        using var pipeline = new KernelPipeline();
        using var net = new BridgeTopology();
        uint server = BridgeTopology.Inode(net.Server), client = BridgeTopology.Inode(net.Client), bridge = BridgeTopology.Inode(net.Switch);

        var x = Exchange(net.Server, net.Client, net.ServerAddress);

        var atServer = Deliveries(pipeline, server);
        var atClient = Deliveries(pipeline, client);
        output.WriteLine($"bridge: server {Describe(atServer)}, client {Describe(atClient)}, switch {Describe(Deliveries(pipeline, bridge))}");
        AssertDelivered("virtual", Up, x.Server, atServer);
        AssertDelivered("virtual", Down, x.Client, atClient);
        Assert.Empty(Deliveries(pipeline, bridge));
        Assert.DoesNotContain(pipeline.Source.Deliveries.ReadLocalPairs(), p => p.Netns == server || p.Netns == client);
        // The per-device counters saw the upload on the client's bridge port and again on the
        // server's veth: once per device crossed.
        var devices = pipeline.Source.RxDevices.Read();
        ulong port = devices.Where(d => d.Key.Netns == bridge && d.Name == net.ClientDevice + "p").Sum(d => (long)d.Bytes) is var p ? (ulong)p : 0;
        ulong veth = devices.Where(d => d.Key.Netns == server && d.Name == net.ServerDevice).Sum(d => (long)d.Bytes) is var v ? (ulong)v : 0;
        output.WriteLine($"per device: {net.ClientDevice}p {port}, {net.ServerDevice} {veth}");
        Assert.True(port >= Up && veth >= Up, $"per-device: bridge port {port}, server veth {veth}, sent {Up}");
    }

    [Fact]
    public async Task DeliveryLatencyIsSampledOnTheLoopbackPathWithinTheExchangesTime()
    {
        const int rounds = 4000;
        using var pipeline = new KernelPipeline();
        using var ns = new BridgeTopology(bridged: false);
        uint netns = BridgeTopology.Inode(ns.Server);
        using var listener = VethPair.In(ns.Server, () => Loopback.Listen());
        using var client = VethPair.In(ns.Server, () => Loopback.Connect(listener.Port()));
        using var accepted = listener.Accept();
        client.NoDelay = accepted.NoDelay = true;
        var message = new byte[64];
        var started = System.Diagnostics.Stopwatch.StartNew();
        var echo = Task.Run(() =>
        {
            var buffer = new byte[64];
            for (int i = 0; i < rounds; i++)
            {
                ReceiveExactly(accepted, buffer);
                accepted.Send(buffer);
            }
        });
        for (int i = 0; i < rounds; i++)
        {
            client.Send(message);
            ReceiveExactly(client, message);
        }
        await echo;
        double elapsed = started.Elapsed.TotalSeconds;
        ulong segments = TcpInfo(client).DataSegsIn + TcpInfo(accepted).DataSegsIn;

        var samples = pipeline.Source.Deliveries.ReadLatencies().Where(l => l.Netns == netns).ToList();
        var lo = Assert.Single(samples);
        ulong count = lo.Buckets.Aggregate(0UL, (a, b) => a + b);
        int slowest = Array.FindLastIndex(lo.Buckets, b => b > 0);
        output.WriteLine($"latency: {count} samples of {segments} data segments, mean {lo.SumNs / Math.Max(count, 1)} ns, slowest bucket <= {(slowest < SockTraceMeterBounds.Length ? SockTraceMeterBounds[slowest] : double.PositiveInfinity)} s; exchange took {elapsed:F3} s");
        Assert.Equal(RxPaths.Loopback, lo.Path);
        // One skb in 64 per CPU is stamped, pure ACKs included (2 * rounds skbs with data):
        // some samples, never more than the segments, none longer than the whole exchange.
        Assert.InRange(count, 1UL, segments);
        Assert.True(lo.SumNs / 1e9 <= elapsed, $"samples sum to {lo.SumNs} ns, the exchange took {elapsed} s");
        Assert.True(slowest < SockTraceMeterBounds.Length && SockTraceMeterBounds[Math.Max(slowest - 1, 0)] < elapsed, $"a sample in bucket {slowest}");
    }

    private static readonly double[] SockTraceMeterBounds = [.. SockTrace.Agent.Metrics.SockTraceMeter.LatencyBuckets];

    /// <summary>Data segments one end received (tcp_info data_segs_in), and how many segments
    /// its peer sent again (the peer's total_retrans).</summary>
    internal readonly record struct Received(ulong Segments, ulong PeerRetransmits)
    {
        public static Received operator +(Received a, Received b) => new(a.Segments + b.Segments, a.PeerRetransmits + b.PeerRetransmits);
    }

    internal readonly record struct Result(ushort Port, Received Server, Received Client);

    /// <summary>
    /// Exactly <paramref name="bytes"/> on <paramref name="path"/> and nothing on another path;
    /// exactly the segments tcp_info counted when the peer sent nothing twice. A segment sent
    /// again (a tail loss probe fires after 10 ms, which an emulated guest easily takes) may
    /// arrive as a duplicate that data_segs_in counts but that delivers no byte and so wakes
    /// no reader: the count may be short by at most the peer's retransmissions.
    /// </summary>
    private static void AssertDelivered(string path, ulong bytes, Received received, Dictionary<string, (ulong Bytes, ulong Segments)> delivered)
    {
        var (onPath, segments) = Assert.Single(delivered, d => d.Key == path).Value;
        Assert.Equal([path], delivered.Keys);
        Assert.Equal(bytes, onPath);
        Assert.InRange(segments, received.Segments - Math.Min(received.PeerRetransmits, received.Segments), received.Segments);
    }

    /// <summary>
    /// A connection from <paramref name="clientNs"/> to a listener in <paramref name="serverNs"/>:
    /// the client sends <see cref="Up"/> bytes and shuts down, the server reads them to EOF and
    /// answers with <see cref="Down"/> bytes. Returns what each socket's tcp_info says it received.
    /// </summary>
    internal static Result Exchange(string serverNs, string clientNs, IPAddress address)
    {
        using var listener = VethPair.In(serverNs, () => Loopback.Listen(address: address));
        int port = listener.Port();
        using var client = VethPair.In(clientNs, () => new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp));
        client.Connect(new IPEndPoint(address, port));
        using var accepted = listener.Accept();
        var upload = Task.Run(() => RxPathTests.ReadToEnd(accepted));
        Send(client, Up);
        client.Shutdown(SocketShutdown.Send);
        Assert.Equal(Up, upload.GetAwaiter().GetResult());
        var download = Task.Run(() => RxPathTests.ReadToEnd(client));
        Send(accepted, Down);
        accepted.Shutdown(SocketShutdown.Send);
        Assert.Equal(Down, download.GetAwaiter().GetResult());
        var server = TcpInfo(accepted);
        var clientInfo = TcpInfo(client);
        // tcp_info's bytes_received counts the FIN's sequence number too.
        Assert.Equal(((ulong)Up + 1, (ulong)Down + 1), (server.BytesReceived, clientInfo.BytesReceived));
        return new((ushort)port, new(server.DataSegsIn, clientInfo.TotalRetrans), new(clientInfo.DataSegsIn, server.TotalRetrans));
    }

    private static void ReceiveExactly(Socket socket, byte[] buffer)
    {
        for (int n = 0; n < buffer.Length;)
        {
            int got = socket.Receive(buffer, n, buffer.Length - n, SocketFlags.None);
            Assert.True(got > 0, "the peer closed early");
            n += got;
        }
    }

    private static void Send(Socket socket, int bytes)
    {
        var chunk = new byte[64 * 1024];
        for (int sent = 0; sent < bytes;)
            sent += socket.Send(chunk, 0, Math.Min(chunk.Length, bytes - sent), SocketFlags.None);
    }

    /// <summary>tcpi_bytes_received (offset 128) and tcpi_data_segs_in (offset 152) of struct tcp_info (include/uapi/linux/tcp.h).</summary>
    internal static (ulong BytesReceived, ulong DataSegsIn, ulong TotalRetrans) TcpInfo(Socket socket)
    {
        var info = new byte[232];
        int n = socket.GetRawSocketOption(6 /* IPPROTO_TCP */, 11 /* TCP_INFO */, info);
        Assert.True(n >= 160, $"tcp_info is {n} bytes");
        // struct tcp_info (include/uapi/linux/tcp.h): tcpi_total_retrans at 100,
        // tcpi_bytes_received at 128, tcpi_data_segs_in at 152.
        return (BinaryPrimitives.ReadUInt64LittleEndian(info.AsSpan(128)), BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(152)),
            BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(100)));
    }

    /// <summary>What sockets of one network namespace received, by path label.</summary>
    internal static Dictionary<string, (ulong Bytes, ulong Segments)> Deliveries(KernelPipeline pipeline, uint netns) =>
        pipeline.Source.Deliveries.ReadDeliveries().Where(d => d.Netns == netns && (d.Bytes > 0 || d.Segments > 0))
            .ToDictionary(d => RxPaths.Label(d.Path), d => (d.Bytes, d.Segments));

    private static string Describe(Dictionary<string, (ulong Bytes, ulong Segments)> d) =>
        d.Count == 0 ? "nothing" : string.Join(", ", d.Select(kv => $"{kv.Key} {kv.Value.Bytes} bytes/{kv.Value.Segments} segments"));
}
