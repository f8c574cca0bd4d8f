using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using SockTrace.Agent.Attribution;
using SockTrace.Agent.Hosting;
using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Metrics;

/// <summary>
/// With attribution on, the accept and race counters carry namespace, pod and container,
/// resolved from each record's cgroup id through a cgroup tree and the pod index; a deleted
/// pod's series leave the export. Asserted on what the agent writes into /metrics.
/// </summary>
public sealed class PodLabelTests : IDisposable
{
    private const ushort Port = 47_123; // unique to this class: other classes share the meter name
    private const string WebId = "3c1d1d2a4f1e5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c";
    private const string DbId = "aa11bb22cc33dd44ee55ff66aa77bb88cc99dd00ee11ff22aa33bb44cc55dd66";
    private const string WebUid = "5f0e2b4c-9a1d-4e3f-8b7a-6c5d4e3f2a1b";
    private const string DbUid = "0b7e3d2c-1a2b-4c3d-9e8f-7a6b5c4d3e2f";

    private readonly string _root = Directory.CreateTempSubdirectory("socktrace-podlabels-").FullName;
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly PodIndex _pods = new();
    private readonly PodAttribution _attribution;
    private readonly ulong _web;
    private readonly ulong _db;
    private readonly ulong _host;

    public PodLabelTests()
    {
        _web = Cgroup($"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{WebUid.Replace('-', '_')}.slice/cri-containerd-{WebId}.scope");
        _db = Cgroup($"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{DbUid.Replace('-', '_')}.slice/crio-{DbId}.scope");
        _host = Cgroup("system.slice/sshd.service");
        _pods.Upsert(Pod("shop", "web-1", WebUid, "web", $"containerd://{WebId}"));
        _pods.Upsert(Pod("data", "postgres-0", DbUid, "postgres", $"cri-o://{DbId}"));
        _attribution = new PodAttribution(new CgroupAttribution(new CgroupDirectory(_root)), _pods);
    }

    public void Dispose()
    {
        _services.Dispose();
        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public void AcceptsCarryTheirPodAndADeletedPodsSeriesLeaveTheExport()
    {
        var metrics = new AcceptMetrics(_services.GetRequiredService<IMeterFactory>(), attribution: _attribution);

        for (int i = 0; i < 3; i++)
            metrics.OnAccept(Record(ret: 7, _web));
        metrics.OnAccept(Record(ret: 7, _db));
        metrics.OnAccept(Record(ret: 7, _host));
        metrics.OnAccept(Record(ret: -11, _web));

        var accepts = Points(metrics, "socktrace_accepts_total");
        Assert.Equal(3, accepts[("shop", "web-1", "web")]);
        Assert.Equal(1, accepts[("data", "postgres-0", "postgres")]);
        Assert.Equal(1, accepts[("", "", "")]);
        Assert.Equal(1, Points(metrics, "socktrace_accept_errors_total")[("shop", "web-1", "web")]);

        _pods.Remove(Pod("shop", "web-1", WebUid, "web", $"containerd://{WebId}"));

        accepts = Points(metrics, "socktrace_accepts_total");
        Assert.False(accepts.ContainsKey(("shop", "web-1", "web")), "the deleted pod's series is still exported");
        Assert.Equal(1, accepts[("data", "postgres-0", "postgres")]);
        Assert.Empty(Points(metrics, "socktrace_accept_errors_total"));
    }

    [Fact]
    public void RacesCarryTheirPod()
    {
        var metrics = new FdRaceMetrics(_services.GetRequiredService<IMeterFactory>(), new RecentRaces(), NullLogger<FdRaceMetrics>.Instance, attribution: _attribution);
        var race = new FdRaceRecord
        {
            Header = new RecordHeader { Type = RecordTypes.FdRace, Size = (uint)Unsafe.SizeOf<FdRaceRecord>() },
            Kind = RaceKinds.Dup2Busy,
            CgroupId = _db,
        };
        "postgres"u8.CopyTo(race.Comm);
        metrics.OnFdRace(race);
        metrics.OnFdRace(race);

        var point = Assert.Single(Exposition.Of(metrics));
        Assert.Equal(2, point.Value);
        Assert.Equal(("data", "postgres-0", "postgres", "dup2_busy"), (point.Labels["namespace"], point.Labels["pod"], point.Labels["container"], point.Labels["kind"]));
    }

    [Fact]
    public void OffLeavesTheLabelsAsTheyWere()
    {
        using var accepts = new MetricCollector<long>(_services.GetRequiredService<IMeterFactory>(), SockTraceMeter.Name, "socktrace.accepts");
        new AcceptMetrics(_services.GetRequiredService<IMeterFactory>()).OnAccept(Record(ret: 7, _web));
        var point = Assert.Single(accepts.GetMeasurementSnapshot());
        Assert.Equal(["comm", "peer", "port"], point.Tags.Keys.Order());
    }

    /// <summary>This class's series of <paramref name="name"/> in /metrics, by (namespace, pod, container).</summary>
    private static Dictionary<(string, string, string), long> Points(AcceptMetrics metrics, string name) =>
        Exposition.Of(metrics)
            .Where(s => s.Name == name && s.Labels["port"] == Port.ToString(System.Globalization.CultureInfo.InvariantCulture) && s.Labels.ContainsKey("pod"))
            .ToDictionary(s => (s.Labels["namespace"], s.Labels["pod"], s.Labels["container"]), s => (long)s.Value);

    private ulong Cgroup(string relative)
    {
        string dir = Path.Combine(_root, relative);
        Directory.CreateDirectory(dir);
        using var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%i", dir]) { RedirectStandardOutput = true })!;
        string inode = stat.StandardOutput.ReadToEnd();
        stat.WaitForExit();
        return ulong.Parse(inode.Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static Pod Pod(string ns, string name, string uid, string container, string containerId) =>
        new(new ObjectMeta(uid, name, ns), new PodStatus([new ContainerStatus(container, containerId)], null, null));

    private static AcceptRecord Record(int ret, ulong cgroupId)
    {
        var r = new AcceptRecord
        {
            Header = new RecordHeader { Type = RecordTypes.Accept, Size = (uint)Unsafe.SizeOf<AcceptRecord>() },
            Ret = ret,
            ListenPort = Port,
            Family = 2,
            EnterNs = 1_000,
            ExitNs = 2_000,
            CgroupId = cgroupId,
        };
        r.PeerAddr[0] = 127;
        "server"u8.CopyTo(r.Comm);
        return r;
    }
}
