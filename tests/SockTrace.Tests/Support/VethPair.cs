using System.Diagnostics;
using System.Runtime.InteropServices;

namespace SockTrace.Tests.Support;

/// <summary>
/// Two network namespaces made for one test, joined by a veth pair: 10.231.0.1/30 on
/// <see cref="DeviceA"/> in <see cref="NamespaceA"/>, 10.231.0.2/30 on <see cref="DeviceB"/> in
/// <see cref="NamespaceB"/>. Nothing is added to the host's own namespace, so the traffic
/// stays between the two; disposing deletes both namespaces and with them the pair.
/// </summary>
internal sealed partial class VethPair : IDisposable
{
    public static readonly System.Net.IPAddress AddressA = System.Net.IPAddress.Parse("10.231.0.1");
    public static readonly System.Net.IPAddress AddressB = System.Net.IPAddress.Parse("10.231.0.2");
    private const int CloneNewNet = 0x40000000;
    private static int s_next;

    public VethPair()
    {
        // Unique per process and pair: tests run in parallel and interface names are at most 15 bytes.
        string id = $"{Environment.ProcessId % 100_000}{Interlocked.Increment(ref s_next)}";
        NamespaceA = $"socktrace-rx-{id}-a";
        NamespaceB = $"socktrace-rx-{id}-b";
        DeviceA = $"strx{id}a";
        DeviceB = $"strx{id}b";
        try
        {
            Ip("netns", "add", NamespaceA);
            Ip("netns", "add", NamespaceB);
            Ip("link", "add", DeviceA, "netns", NamespaceA, "type", "veth", "peer", "name", DeviceB, "netns", NamespaceB);
            Ip("-n", NamespaceA, "addr", "add", "10.231.0.1/30", "dev", DeviceA);
            Ip("-n", NamespaceB, "addr", "add", "10.231.0.2/30", "dev", DeviceB);
            Ip("-n", NamespaceA, "link", "set", DeviceA, "up");
            Ip("-n", NamespaceB, "link", "set", DeviceB, "up");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string NamespaceA { get; }
    public string NamespaceB { get; }
    public string DeviceA { get; }
    public string DeviceB { get; }

    /// <summary>Runs <paramref name="create"/> on a thread of its own that entered the namespace:
    /// a socket belongs to the namespace it was created in, whichever thread uses it later.</summary>
    public static T In<T>(string netns, Func<T> create)
    {
        T result = default!;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var ns = File.OpenHandle($"/run/netns/{netns}");
                if (setns((int)ns.DangerousGetHandle(), CloneNewNet) != 0)
                    throw new InvalidOperationException($"setns({netns}) failed: errno {Marshal.GetLastPInvokeError()}");
                result = create();
            }
            catch (Exception ex)
            {
                error = ex;
            }
        });
        thread.Start();
        thread.Join();
        return error is null ? result : throw new InvalidOperationException($"in network namespace {netns}", error);
    }

    public void Dispose()
    {
        TryIp("netns", "del", NamespaceA);
        TryIp("netns", "del", NamespaceB);
    }

    private static void Ip(params string[] args)
    {
        var (code, error) = RunIp(args);
        if (code != 0)
            Assert.Fail($"ip {string.Join(' ', args)} failed ({code}): {error}");
    }

    private static void TryIp(params string[] args) => RunIp(args);

    private static (int Code, string Error) RunIp(string[] args)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardError = true };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, error.Trim());
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setns(int fd, int nstype);
}
