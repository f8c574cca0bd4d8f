using Microsoft.Extensions.Logging.Abstractions;
using SockTrace.Agent.Attribution;
using SockTrace.Agent.Hosting;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Attribution;

/// <summary>
/// The watcher against an API server served here on 127.0.0.1: a recorded pod list, then a
/// watch stream the test writes events into.
/// </summary>
public sealed class KubernetesPodWatcherTests : IAsyncDisposable
{
    private const string Node = "node-a";
    private const string Web = "3c1d1d2a4f1e5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c";
    private const string Sidecar = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";
    private const string Db = "aa11bb22cc33dd44ee55ff66aa77bb88cc99dd00ee11ff22aa33bb44cc55dd66";
    private const string WebUid = "5f0e2b4c-9a1d-4e3f-8b7a-6c5d4e3f2a1b";
    private const string DbUid = "0b7e3d2c-1a2b-4c3d-9e8f-7a6b5c4d3e2f";

    private readonly FakeKubernetesApi _server = new();
    private readonly PodIndex _index = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _watching;
    private readonly KubernetesPodWatcher _watcher;

    public KubernetesPodWatcherTests()
    {
        _server.PodList = FakeKubernetesApi.PodListJson("1000", FakeKubernetesApi.Pod("shop", "web-7d9f8b6c5-x2x4q", WebUid, ("web", $"containerd://{Web}"), ("envoy", $"containerd://{Sidecar}")));
        var api = new KubernetesApi(new KubernetesConfig(new Uri(_server.Url)));
        _watcher = new KubernetesPodWatcher(api, Node, _index, NullLogger.Instance) { RetryDelay = TimeSpan.FromMilliseconds(50) };
        _watching = Task.Run(() => _watcher.RunAsync(_stop.Token));
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _watching;
        _server.Dispose();
        _stop.Dispose();
    }

    [Fact]
    public void ResolvesEachContainerOfTheListedPods()
    {
        WaitFor(() => _index.Pods == 1, "the list");

        Assert.Equal(new PodContainer("shop", "web-7d9f8b6c5-x2x4q", "web", WebUid), _index.Find(new ContainerCgroup(Web, WebUid)));
        Assert.Equal("envoy", _index.Find(new ContainerCgroup(Sidecar, WebUid))?.Container);
        // Started but not yet in the pod's status: named by its pod alone.
        Assert.Equal(new PodContainer("shop", "web-7d9f8b6c5-x2x4q", "", WebUid), _index.Find(new ContainerCgroup(Db, WebUid)));
        Assert.Null(_index.Find(new ContainerCgroup(Db, null)));
        Assert.Null(_index.Find(new ContainerCgroup(null, null)));
    }

    [Fact]
    public void AskedOnlyForThisNodesPods()
    {
        WaitFor(() => _server.Requests.Count(r => r.Contains("watch=true", StringComparison.Ordinal)) >= 1, "the watch");
        Assert.All(_server.Requests, r => Assert.Contains("fieldSelector=spec.nodeName%3Dnode-a", r));
        Assert.Contains(_server.Requests, r => r.Contains("resourceVersion=1000", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AddedModifiedAndDeletedEventsKeepTheIndexCurrent()
    {
        var removed = new List<string>();
        _index.PodRemoved += uid => { lock (removed) removed.Add(uid); };
        WaitFor(() => _server.Watching, "the watch");

        await _server.Send("ADDED", FakeKubernetesApi.Pod("data", "postgres-0", DbUid));
        WaitFor(() => _index.Pods == 2, "the ADDED pod");
        Assert.Null(_index.Find(new ContainerCgroup(Db, null)));

        await _server.Send("MODIFIED", FakeKubernetesApi.Pod("data", "postgres-0", DbUid, ("postgres", $"cri-o://{Db}")));
        WaitFor(() => _index.Find(new ContainerCgroup(Db, null)) is not null, "the MODIFIED pod's container");
        Assert.Equal(new PodContainer("data", "postgres-0", "postgres", DbUid), _index.Find(new ContainerCgroup(Db, null)));

        await _server.Send("DELETED", FakeKubernetesApi.Pod("shop", "web-7d9f8b6c5-x2x4q", WebUid, ("web", $"containerd://{Web}")));
        WaitFor(() => _index.Pods == 1, "the DELETED pod to go");
        Assert.Null(_index.Find(new ContainerCgroup(Web, WebUid)));
        Assert.Null(_index.Find(new ContainerCgroup(Sidecar, null)));
        lock (removed)
            Assert.Equal([WebUid], removed);
    }

    [Fact]
    public async Task ARelistDropsPodsDeletedWhileNoWatchWasOpen()
    {
        var removed = new List<string>();
        _index.PodRemoved += uid => { lock (removed) removed.Add(uid); };
        WaitFor(() => _server.Watching, "the watch");
        int lists = _watcher.Lists;

        _server.PodList = FakeKubernetesApi.PodListJson("2000", FakeKubernetesApi.Pod("data", "postgres-0", DbUid, ("postgres", $"containerd://{Db}")));
        await _server.EndWatch();
        WaitFor(() => _watcher.Lists > lists, "the relist");

        Assert.Null(_index.Find(new ContainerCgroup(Web, null)));
        Assert.Equal("postgres", _index.Find(new ContainerCgroup(Db, null))?.Container);
        lock (removed)
            Assert.Equal([WebUid], removed);
    }

    private static void WaitFor(Func<bool> done, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!done())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out waiting for {what}");
            Thread.Sleep(10);
        }
    }

}
