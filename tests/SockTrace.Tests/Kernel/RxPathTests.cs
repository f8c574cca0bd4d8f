using Xunit.Abstractions;
using System.Net;
using System.Net.Sockets;
using SockTrace.Agent.Bpf;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>
/// The receive path on the real kernel: bytes sent over loopback and over a veth pair the
/// test makes are counted on the device that received them. Everything on the host is
/// counted too, so the assertions are "rose by at least what the test sent".
/// </summary>
[Trait("Category", "Kernel")]
[Collection(MetricsCollection.Name)]
public sealed class RxPathTests(ITestOutputHelper output)
{
    [Fact]
    public void LoopbackBytesAreCountedOnLoAsLoopback()
    {
        const int bytes = 4 << 20;
        using var pipeline = new KernelPipeline();
        Assert.Equal(KernelPipeline.ExpectedMode(Hooks.Rx), pipeline.Source.Probes.Single(p => p.Hook == "rx").Mode);
        var before = pipeline.ScrapeRxBytes();
        using var listener = Loopback.Listen();
        int port = listener.Port();

        long received = Transfer(listener, () => Loopback.Connect(port), bytes);

        var after = pipeline.ScrapeRxBytes();
        output.WriteLine($"sent {bytes} over loopback; lo rose by {Rise(before, after, ("loopback", "lo"))}, nic by {RiseOfPath(before, after, "nic")}");
        Assert.Equal(bytes, received);
        Assert.True(Rise(before, after, ("loopback", "lo")) >= bytes, $"lo rose by {Rise(before, after, ("loopback", "lo"))}, sent {bytes}");
        // No NIC carried these bytes: whatever the host's NIC received meanwhile is far less.
        Assert.True(RiseOfPath(before, after, "nic") < bytes, $"nic rose by {RiseOfPath(before, after, "nic")}");
        pipeline.AssertOneAccept(port, "loopback");
    }

    [Fact]
    public void VethBytesAreCountedOnTheReceivingVethAsVirtualAndItsPeerIsLocal()
    {
        const int bytes = 2 << 20;
        using var pipeline = new KernelPipeline();
        using var veth = new VethPair();
        var before = pipeline.ScrapeRxBytes();
        using var listener = VethPair.In(veth.NamespaceA, () => Loopback.Listen(address: VethPair.AddressA));
        int port = listener.Port();

        long received = Transfer(listener, () => VethPair.In(veth.NamespaceB, () => new Socket(SocketType.Stream, ProtocolType.Tcp)), bytes, VethPair.AddressA);

        var after = pipeline.ScrapeRxBytes();
        Assert.Equal(bytes, received);
        long rise = Rise(before, after, ("virtual", veth.DeviceA));
        output.WriteLine($"sent {bytes} over a veth pair; {veth.DeviceA} rose by {rise}, {veth.DeviceB} by {Rise(before, after, ("virtual", veth.DeviceB))}, nic by {RiseOfPath(before, after, "nic")}");
        Assert.True(rise >= bytes, $"{veth.DeviceA} rose by {rise}, sent {bytes}");
        Assert.True(RiseOfPath(before, after, "nic") < bytes, $"nic rose by {RiseOfPath(before, after, "nic")}");
        // Another namespace of this host connected: like a pod on the same node.
        pipeline.AssertOneAccept(port, "local");
    }

    /// <summary>Connects <paramref name="client"/> to the listener, sends <paramref name="bytes"/>,
    /// closes, and returns what the accepted side read up to EOF.</summary>
    private static long Transfer(Socket listener, Func<Socket> client, int bytes, IPAddress? to = null)
    {
        int port = listener.Port();
        using var sender = client();
        if (!sender.Connected)
            sender.Connect(new IPEndPoint(to!, port));
        using var accepted = listener.Accept();
        var reading = Task.Run(() => ReadToEnd(accepted));
        var chunk = new byte[64 * 1024];
        for (int sent = 0; sent < bytes; sent += chunk.Length)
            sender.Send(chunk, 0, Math.Min(chunk.Length, bytes - sent), SocketFlags.None);
        sender.Shutdown(SocketShutdown.Send);
        return reading.GetAwaiter().GetResult();
    }

    internal static long ReadToEnd(Socket socket)
    {
        var buffer = new byte[64 * 1024];
        long total = 0;
        for (int n; (n = socket.Receive(buffer)) > 0;)
            total += n;
        return total;
    }

    internal static long Rise(Dictionary<(string, string), long> before, Dictionary<(string, string), long> after, (string Path, string Device) series) =>
        after.GetValueOrDefault(series) - before.GetValueOrDefault(series);

    private static long RiseOfPath(Dictionary<(string Path, string Device), long> before, Dictionary<(string Path, string Device), long> after, string path) =>
        after.Where(s => s.Key.Path == path).Sum(s => s.Value - before.GetValueOrDefault(s.Key));
}
