using System.Globalization;
using System.Net;
using System.Net.Sockets;
using SockTrace.Agent.Bpf;
using SockTrace.Tests.Support;
using Xunit.Abstractions;

namespace SockTrace.Tests.Kernel;

/// <summary>
/// Listeners in a network namespace the test makes, reached from a second one over a veth
/// pair: their accept-queue depth and overflows are reported under that namespace's inode,
/// and agree with what the kernel itself shows for it (`ss -lnt`, /proc/net/netstat), which
/// the agent's own namespace cannot see.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class ListenQueueTests(ITestOutputHelper output)
{
    /// <summary>Backlog 4, three connections waiting (the kernel's Recv-Q says 3), one accept:
    /// the depth it took from is 3 and the limit 4; closing the listener removes its series.</summary>
    [Fact]
    public void QueueDepthOfAListenerInAnotherNamespace()
    {
        using var veth = new VethPair();
        using var pipeline = new KernelPipeline();
        using var listener = VethPair.In(veth.NamespaceA, () => Listen(4));
        int port = listener.Port();
        var clients = Enumerable.Range(0, 3).Select(_ => VethPair.In(veth.NamespaceB, () => Connect(port, blocking: true))).ToList();
        Eventually.True(() => RecvQ(veth.NamespaceA, port) == 3, "three connections in the accept queue (ss -lnt)");

        using var accepted = listener.Accept();

        string netns = Inode(veth.NamespaceA);
        var (overflows, depth, limit) = pipeline.ScrapeListen(netns, port);
        output.WriteLine($"netns {netns} port {port}: depth {depth}, limit {limit}, overflows {overflows}");
        Assert.Equal(3, depth);
        Assert.Equal(4, limit);
        // Counted only where the listen_overflow hook is attached; elsewhere not claimed.
        bool counted = pipeline.Plan.Single(p => p.Hook == Hooks.ListenOverflow).Mode is not null;
        Assert.Equal(counted ? 0 : null, overflows);

        // A closed listener's series are gone from the scrape: close() runs the state change
        // that removes them once the socket's last reference goes. Bound to port 0, so the
        // kernel has zeroed its port number by then (bpf/listen.bpf.h).
        listener.Close();
        Eventually.True(() => pipeline.ScrapeListen(netns, port) == (null, null, null), "the closed listener's series to go", TimeSpan.FromSeconds(10));
        clients.ForEach(c => c.Dispose());
    }

    internal static Socket Listen(int backlog)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(VethPair.AddressA, 0));
        s.Listen(backlog);
        return s;
    }

    internal static Socket Connect(int port, bool blocking)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { Blocking = blocking };
        try
        {
            s.Connect(new IPEndPoint(VethPair.AddressA, port));
        }
        catch (SocketException ex) when (!blocking && ex.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
        {
            // The SYN is on its way; the handshake would finish later.
        }
        return s;
    }

    /// <summary>Recv-Q of the listener on <paramref name="port"/>: its accept queue's length now.</summary>
    internal static int RecvQ(string netns, int port)
    {
        string line = Command.Output("ip", "netns", "exec", netns, "ss", "-Hlnt", "sport", "=", $":{port}").Trim();
        return line.Length == 0 ? -1 : int.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }

    /// <summary>TcpExt ListenOverflows in the namespace's /proc/net/netstat.</summary>
    internal static long ListenOverflows(string netns)
    {
        var lines = Command.Output("ip", "netns", "exec", netns, "cat", "/proc/net/netstat").Split('\n').Where(l => l.StartsWith("TcpExt:", StringComparison.Ordinal)).ToList();
        string[] names = lines[0].Split(' '), values = lines[1].Split(' ');
        return long.Parse(values[Array.IndexOf(names, "ListenOverflows")], CultureInfo.InvariantCulture);
    }

    /// <summary>The namespace's inode number: the netns label's value.</summary>
    internal static string Inode(string netns) => Command.Output("stat", "-L", "-c", "%i", $"/run/netns/{netns}").Trim();
}
