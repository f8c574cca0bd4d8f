using SockTrace.Agent.Attribution;
using SockTrace.Agent.Hosting;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Attribution;

/// <summary>
/// What `socktrace check --attribution kubernetes` reports, against this host's cgroup
/// hierarchy and an API server served here on 127.0.0.1 with a recorded pod list.
/// </summary>
public sealed class AttributionCheckTests : IDisposable
{
    private const string Node = "node-a";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly FakeKubernetesApi _server = new();

    public AttributionCheckTests() =>
        _server.PodList = FakeKubernetesApi.PodListJson("7", FakeKubernetesApi.Pod("shop", "web-0", "5f0e2b4c-9a1d-4e3f-8b7a-6c5d4e3f2a1b"), FakeKubernetesApi.Pod("data", "db-0", "0b7e3d2c-1a2b-4c3d-9e8f-7a6b5c4d3e2f"));

    [Fact]
    public void EverythingInPlace()
    {
        var results = AttributionCheck.Run("/sys/fs/cgroup", Node, Client(_server.Url), Timeout);
        Assert.Equal(["cgroup v2", "node name", "api credentials", "pods on node"], results.Select(r => r.Name));
        Assert.All(results, r => Assert.True(r.Ok, $"{r.Name}: {r.Detail}"));
        Assert.Equal("2 pod(s) on node-a", results[3].Detail);
    }

    [Fact]
    public void NoNodeNameStopsThere()
    {
        var results = AttributionCheck.Run("/sys/fs/cgroup", null, Client(_server.Url), Timeout);
        var last = results[^1];
        Assert.Equal(("node name", false, ExitCodes.Usage), (last.Name, last.Ok, last.ExitCode));
        Assert.Equal(2, results.Count);
    }

    [Fact]
    public void NoCgroupHierarchyIsNamed()
    {
        var results = AttributionCheck.Run("/nonexistent/cgroup", Node, Client(_server.Url), Timeout);
        Assert.Equal(("cgroup v2", false, ExitCodes.KernelUnsupported), (results[0].Name, results[0].Ok, results[0].ExitCode));
        Assert.Equal("no cgroup v2 hierarchy at /nonexistent/cgroup (mount the host's read-only)", results[0].Detail);
    }

    [Fact]
    public void NoCredentials()
    {
        var results = AttributionCheck.Run("/sys/fs/cgroup", Node, () => throw new InvalidOperationException("no token file"), Timeout);
        Assert.Equal(("api credentials", false, ExitCodes.Usage), (results[^1].Name, results[^1].Ok, results[^1].ExitCode));
        Assert.Equal("no service account credentials: no token file", results[^1].Detail);
    }

    [Fact]
    public void AnApiServerThatDoesNotAnswer()
    {
        // A port that was just free: nothing listens there.
        using var probe = Loopback.Listen();
        string url = $"http://127.0.0.1:{probe.Port()}";
        probe.Close();
        var results = AttributionCheck.Run("/sys/fs/cgroup", Node, Client(url), Timeout);
        var last = results[^1];
        Assert.Equal(("pods on node", false, ExitCodes.KubernetesApi), (last.Name, last.Ok, last.ExitCode));
        Assert.StartsWith("listing the pods of node-a failed: ", last.Detail);
    }

    private static Func<KubernetesApi> Client(string url) => () => new KubernetesApi(new KubernetesConfig(new Uri(url)));

    public void Dispose() => _server.Dispose();
}
