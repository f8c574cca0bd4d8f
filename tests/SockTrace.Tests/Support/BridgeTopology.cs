using System.Diagnostics;

namespace SockTrace.Tests.Support;

/// <summary>
/// Network namespaces made for one test: <see cref="Client"/> and <see cref="Server"/>, each
/// joined by a veth pair to a bridge in a third namespace, <see cref="Switch"/>
/// (10.232.N.2/24 on the client, 10.232.N.1/24 on the server). A segment from client to
/// server crosses a veth, the bridge and a second veth: the per-device receive counters
/// see it three times (the client's veth peer enslaved to the bridge, and the server's
/// veth), a socket receives it once. Disposing deletes the namespaces and the devices.
/// With <paramref name="bridged"/> false: one namespace with only its loopback device up.
/// </summary>
internal sealed class BridgeTopology : IDisposable
{
    private static int s_next;
    private readonly List<string> _namespaces = [];

    public BridgeTopology(bool bridged = true)
    {
        int n = Interlocked.Increment(ref s_next);
        string id = $"{Environment.ProcessId % 100_000}{n}";
        Client = $"socktrace-dl-{id}-c";
        Server = $"socktrace-dl-{id}-s";
        Switch = $"socktrace-dl-{id}-w";
        ClientDevice = $"stdl{id}c";
        ServerDevice = $"stdl{id}s";
        ServerAddress = System.Net.IPAddress.Parse($"10.232.{n % 250}.1");
        try
        {
            Add(Server);
            Ip("-n", Server, "link", "set", "lo", "up");
            if (!bridged)
                return;
            Add(Client);
            Add(Switch);
            Ip("-n", Client, "link", "set", "lo", "up");
            Ip("-n", Switch, "link", "add", "br0", "type", "bridge");
            Ip("-n", Switch, "link", "set", "br0", "up");
            foreach (var (ns, dev, addr) in new[] { (Client, ClientDevice, $"10.232.{n % 250}.2/24"), (Server, ServerDevice, $"10.232.{n % 250}.1/24") })
            {
                Ip("-n", Switch, "link", "add", dev + "p", "type", "veth", "peer", "name", dev, "netns", ns);
                Ip("-n", Switch, "link", "set", dev + "p", "master", "br0");
                Ip("-n", Switch, "link", "set", dev + "p", "up");
                Ip("-n", ns, "addr", "add", addr, "dev", dev);
                Ip("-n", ns, "link", "set", dev, "up");
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Client { get; }
    public string Server { get; }
    public string Switch { get; }
    public string ClientDevice { get; }
    public string ServerDevice { get; }
    public System.Net.IPAddress ServerAddress { get; }

    /// <summary>The inode number of a network namespace: the netns field of the BPF maps' keys.</summary>
    public static uint Inode(string netns) => VethPair.In(netns, () =>
    {
        // "net:[4026532301]" for the namespace the calling thread is in.
        string link = new FileInfo("/proc/thread-self/ns/net").LinkTarget!;
        return uint.Parse(link.AsSpan(5, link.Length - 6), System.Globalization.CultureInfo.InvariantCulture);
    });

    public void Dispose()
    {
        foreach (string ns in _namespaces)
            Run(["netns", "del", ns]);
    }

    private void Add(string ns)
    {
        Ip("netns", "add", ns);
        _namespaces.Add(ns);
    }

    private static void Ip(params string[] args)
    {
        var (code, error) = Run(args);
        if (code != 0)
            Assert.Fail($"ip {string.Join(' ', args)} failed ({code}): {error}");
    }

    private static (int Code, string Error) Run(string[] args)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardError = true };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, error.Trim());
    }
}
