using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using SockTrace.Agent.Attribution;
using SockTrace.Agent.Bpf;
using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;
using SockTrace.Tests.Support;
using Xunit.Abstractions;

namespace SockTrace.Tests.Kernel;

/// <summary>
/// Listeners in cgroups named as containerd and CRI-O name them: the cgroup id each accept
/// record carries resolves, through the real cgroup v2 hierarchy, to that container's id.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class ContainerCgroupTests(ITestOutputHelper output) : IDisposable
{
    private const int Accepts = 4;
    private static readonly string Parent = $"socktrace-test-{Environment.ProcessId}.slice";
    private readonly List<string> _created = [];
    private readonly List<Process> _listeners = [];

    private static string Root => CgroupDirectory.FindRoot() ?? throw new InvalidOperationException("no cgroup v2 hierarchy under /sys/fs/cgroup");

    [Fact]
    public void AcceptsCarryTheContainerIdOfTheListenersCgroup()
    {
        Requires.Root();
        string containerd = Hex(0xc0);
        string crio = Hex(0xc1);
        string pod = "5f0e2b4c-9a1d-4e3f-8b7a-6c5d4e3f2a1b";
        var cgroups = new Dictionary<string, string>
        {
            [containerd] = $"{Parent}/kubepods-burstable-pod{pod.Replace('-', '_')}.slice/cri-containerd-{containerd}.scope",
            [crio] = $"{Parent}/crio-{crio}.scope",
        };

        var seen = new ConcurrentQueue<(ushort Port, uint Pid, ulong CgroupId, ContainerCgroup Container)>();
        var attribution = new CgroupAttribution(new CgroupDirectory(Root, minRescanInterval: TimeSpan.Zero));
        var decoder = new RecordDecoder(new Capture((in AcceptRecord r) =>
            seen.Enqueue((r.ListenPort, r.Pid, r.CgroupId, attribution.Resolve(r.CgroupId)))), new IgnoreRaces());
        using var source = new KernelEventSource(decoder, KernelPipeline.PlanUnderTest(), KernelPipeline.KernelUnderTest,
            new KernelSourceOptions(1 << 22, TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(1)), NullLogger.Instance);
        source.Start();

        var listeners = new Dictionary<string, (int Port, int Pid, string Comm)>();
        foreach (var (id, cgroup) in cgroups)
            listeners[id] = RunListenerIn(cgroup);

        // By port and pid: another test's listener may get the same port number once this one is gone.
        foreach (var (id, (port, pid, _)) in listeners)
        {
            bool Mine((ushort Port, uint Pid, ulong CgroupId, ContainerCgroup Container) s) => s.Port == port && s.Pid == pid;
            Eventually.True(() => seen.Count(Mine) >= Accepts, $"{Accepts} accepts on port {port}");
            Thread.Sleep(100);
            var accepts = seen.Where(Mine).ToList();
            output.WriteLine($"port {port}: {accepts.Count} accepts, cgroup id {accepts[0].CgroupId} -> {accepts[0].Container}");
            Assert.Equal(Accepts, accepts.Count);
            ulong expectedCgroupId = Inode(Path.Combine(Root, cgroups[id]));
            Assert.All(accepts, a =>
            {
                Assert.Equal(expectedCgroupId, a.CgroupId);
                Assert.Equal(id, a.Container.ContainerId);
            });
        }
        Assert.Equal(pod, seen.First(s => s.Pid == listeners[containerd].Pid).Container.PodUid);
        Assert.Null(seen.First(s => s.Pid == listeners[crio].Pid).Container.PodUid);
    }

    /// <summary>
    /// A container's first accepts come right after its cgroup is made, well within the
    /// interval that spaces out walks for ids that are not found: a cgroup made after the last
    /// walk has a newer id than all it saw, and is looked for at once. An id of the past that
    /// is not found waits for the interval.
    /// </summary>
    [Fact]
    public void ACgroupMadeRightAfterAWalkIsFoundAtOnce()
    {
        Requires.Root();
        var directory = new CgroupDirectory(Root, minRescanInterval: TimeSpan.FromHours(1));
        string gone = Path.Combine(Root, Parent, "gone.scope"), first = Path.Combine(Root, Parent, "first.scope"), second = Path.Combine(Root, Parent, "second.scope");
        CreateCgroup(gone);
        ulong goneId = Inode(gone);
        Directory.Delete(gone);
        CreateCgroup(first);
        Assert.Equal($"/{Parent}/first.scope", directory.PathOf(Inode(first)));
        CreateCgroup(second);
        Assert.Equal($"/{Parent}/second.scope", directory.PathOf(Inode(second)));
        Assert.Equal(2, directory.Scans);
        Assert.Null(directory.PathOf(goneId));
        Assert.Equal(2, directory.Scans);
    }

    /// <summary>
    /// The whole chain: a listener in a containerd-named cgroup, its pod served by an API
    /// server in the test; its accepts are exported with the pod's namespace, pod and
    /// container, and once a DELETED event arrives for the pod its series are exported no more.
    /// </summary>
    [Fact]
    public async Task AcceptsCarryThePodFromTheApiUntilThePodIsDeleted()
    {
        Requires.Root();
        string id = Hex(0xd0);
        const string uid = "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d";
        string pod = FakeKubernetesApi.Pod("shop", "web-0", uid, ("web", $"containerd://{id}"));
        using var api = new FakeKubernetesApi { PodList = FakeKubernetesApi.PodListJson("1", pod) };
        var pods = new PodIndex();
        using var stop = new CancellationTokenSource();
        var watcher = new KubernetesPodWatcher(new SockTrace.Agent.Hosting.KubernetesApi(new SockTrace.Agent.Hosting.KubernetesConfig(new Uri(api.Url))), "node-a", pods, NullLogger.Instance);
        var watching = Task.Run(() => watcher.RunAsync(stop.Token));
        Eventually.True(() => api.Watching, "the pod watch");

        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var attribution = new PodAttribution(new CgroupAttribution(new CgroupDirectory(Root, minRescanInterval: TimeSpan.Zero)), pods);
        var metrics = new AcceptMetrics(services.GetRequiredService<IMeterFactory>(), attribution: attribution);
        var decoder = new RecordDecoder(metrics, new IgnoreRaces());
        using var source = new KernelEventSource(decoder, KernelPipeline.PlanUnderTest(), KernelPipeline.KernelUnderTest,
            new KernelSourceOptions(1 << 22, TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(1)), NullLogger.Instance);
        source.Start();

        var (port, _, comm) = RunListenerIn($"{Parent}/kubepods-besteffort-pod{uid.Replace('-', '_')}.slice/cri-containerd-{id}.scope");

        List<(string Namespace, string Pod, string Container, long Count)> series = [];
        Eventually.True(() => (series = Exported(metrics, port, comm)).Sum(s => s.Count) >= Accepts, $"{Accepts} accepts on port {port}");
        Thread.Sleep(100);
        series = Exported(metrics, port, comm);
        output.WriteLine($"port {port}: {string.Join("; ", series)}");
        Assert.Equal([("shop", "web-0", "web", (long)Accepts)], series);

        await api.Send("DELETED", pod);
        Eventually.True(() => Exported(metrics, port, comm).Count == 0, "the deleted pod's series to leave the export", TimeSpan.FromSeconds(20));

        await stop.CancelAsync();
        await watching;
    }

    /// <summary>The accept series of the listener on <paramref name="port"/> named
    /// <paramref name="comm"/>, as written into /metrics: the name tells it from another
    /// test's listener that gets the same port number once this one is gone.</summary>
    private static List<(string Namespace, string Pod, string Container, long Count)> Exported(AcceptMetrics metrics, int port, string comm) =>
        [.. Exposition.Of(metrics)
            .Where(s => s.Name == "socktrace_accepts_total" && s.Labels["port"] == port.ToString(System.Globalization.CultureInfo.InvariantCulture)
                && s.Labels["comm"] == comm && s.Labels.ContainsKey("pod"))
            .Select(s => (s.Labels["namespace"], s.Labels["pod"], s.Labels["container"], (long)s.Value))];

    /// <summary>A python3 listener moved into <paramref name="cgroup"/> before it accepts
    /// <see cref="Accepts"/> connections; returns its port, pid and process name once they are all made.</summary>
    private (int Port, int Pid, string Comm) RunListenerIn(string cgroup)
    {
        string dir = Path.Combine(Root, cgroup);
        CreateCgroup(dir);
        // Started through a link of its own name, so the process's comm is unique to it.
        string name = $"stcg{Interlocked.Increment(ref s_listeners)}-{Environment.ProcessId % 100_000}";
        string link = Path.Combine(Path.GetTempPath(), name);
        File.Delete(link);
        File.CreateSymbolicLink(link, Python.Value);
        var info = new ProcessStartInfo(link) { RedirectStandardInput = true, RedirectStandardOutput = true };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add($$"""
            import socket, sys
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(16)
            print(s.getsockname()[1], flush=True)
            sys.stdin.readline()
            for _ in range({{Accepts}}):
                c, _ = s.accept()
                c.close()
            """);
        var listener = Process.Start(info)!;
        _listeners.Add(listener);
        int port = int.Parse(listener.StandardOutput.ReadLine()!, System.Globalization.CultureInfo.InvariantCulture);
        // Moved before it accepts: the record carries the cgroup of the task at accept time.
        File.WriteAllText(Path.Combine(dir, "cgroup.procs"), listener.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        listener.StandardInput.WriteLine("go");
        listener.StandardInput.Flush();
        for (int i = 0; i < Accepts; i++)
        {
            using var client = Loopback.Connect(port);
        }
        Assert.True(listener.WaitForExit(TimeSpan.FromSeconds(30)), "the listener did not finish its accepts");
        Assert.Equal(0, listener.ExitCode);
        File.Delete(link);
        return (port, listener.Id, name);
    }

    private static int s_listeners;

    /// <summary>python3 itself: a link to a link (pyenv, alternatives) would name the last one.</summary>
    private static readonly Lazy<string> Python = new(() =>
    {
        string path = Command.Output("python3", "-c", "import sys; print(sys.executable)").Trim();
        return new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? path;
    });

    private void CreateCgroup(string dir)
    {
        // Parents first, so Dispose removes children before them.
        string relative = Path.GetRelativePath(Root, dir);
        string path = Root;
        foreach (string part in relative.Split('/'))
        {
            path = Path.Combine(path, part);
            if (!Directory.Exists(path))
            {
                Directory.CreateDirectory(path);
                _created.Add(path);
            }
        }
    }

    private static string Hex(byte b) => Convert.ToHexStringLower(Enumerable.Range(0, 32).Select(i => (byte)(b + i)).ToArray());

    private static ulong Inode(string path) =>
        ulong.Parse(Command.Output("stat", "-c", "%i", path).Trim(), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Kills what is left and removes the cgroups, innermost first; a cgroup with a
    /// live task cannot be removed, so the listeners go first.</summary>
    public void Dispose()
    {
        foreach (var p in _listeners)
        {
            if (!p.HasExited)
                p.Kill();
            p.WaitForExit();
            p.Dispose();
        }
        for (int i = _created.Count - 1; i >= 0; i--)
        {
            // rmdir(2), not a recursive delete: a cgroup's control files cannot be unlinked.
            Eventually.True(() =>
            {
                try
                {
                    Directory.Delete(_created[i]);
                    return true;
                }
                catch (IOException)
                {
                    return !Directory.Exists(_created[i]);
                }
            }, $"removing cgroup {_created[i]}", TimeSpan.FromSeconds(10));
        }
    }

    private delegate void OnAccept(in AcceptRecord r);

    private sealed class Capture(OnAccept onAccept) : IAcceptHandler
    {
        public void OnAccept(in AcceptRecord record) => onAccept(in record);
    }

    private sealed class IgnoreRaces : IFdRaceHandler
    {
        public void OnFdRace(in FdRaceRecord record) { }
    }
}
