using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SockTrace.Agent.Hosting;

namespace SockTrace.Agent.Attribution;

/// <summary>
/// cgroup id to namespace, pod and container: the cgroup's path names the container, the
/// API server's pods on this node name its pod. <see cref="Resolve"/> is called from the
/// record reader only; the index behind it is kept current by the watcher's task.
/// </summary>
public sealed class PodAttribution
{
    private readonly CgroupAttribution _cgroups;

    public PodAttribution(CgroupAttribution cgroups, PodIndex pods)
    {
        _cgroups = cgroups;
        Pods = pods;
    }

    public PodIndex Pods { get; }

    /// <summary>Raised, on the watcher's task, with the UID of each pod that is gone.</summary>
    public event Action<string>? PodRemoved
    {
        add => Pods.PodRemoved += value;
        remove => Pods.PodRemoved -= value;
    }

    /// <summary>The pod container behind a record, or null for a host process, a container
    /// outside Kubernetes, or a pod the API has not reported yet.</summary>
    public PodContainer? Resolve(ulong cgroupId) => Pods.Find(_cgroups.Resolve(cgroupId));
}

/// <summary>
/// With --attribution kubernetes: checks in StartAsync that the cgroup hierarchy, the node's
/// name and the in-cluster credentials are there (so a pod missing one crash-loops with the
/// reason), then keeps the pod index current until the host stops.
/// </summary>
public sealed partial class PodAttributionService(AgentOptions options, PodIndex pods, ILogger<PodAttributionService> logger) : IHostedService
{
    public const string CgroupMount = "/sys/fs/cgroup";

    private CancellationTokenSource? _stop;
    private Task? _watching;

    /// <summary>The resolver for the metrics, or null when attribution is off.</summary>
    public static PodAttribution? Create(AgentOptions options, PodIndex pods)
    {
        if (options.Attribution != AgentOptions.AttributionKubernetes)
            return null;
        string root = CgroupDirectory.FindRoot(CgroupMount)
            ?? throw new StartupException(ExitCodes.KernelUnsupported,
                $"{AgentSettings.Attribution.Flag} {AgentOptions.AttributionKubernetes} needs the host's cgroup v2 hierarchy at {CgroupMount} (mount it read-only)");
        return new PodAttribution(new CgroupAttribution(new CgroupDirectory(root)), pods);
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.Attribution != AgentOptions.AttributionKubernetes)
            return Task.CompletedTask;
        string node = Environment.GetEnvironmentVariable("NODE_NAME") is { Length: > 0 } name
            ? name
            : throw new StartupException(ExitCodes.Usage,
                $"{AgentSettings.Attribution.Flag} {AgentOptions.AttributionKubernetes} needs NODE_NAME (the pod's spec.nodeName through the downward API)");
        KubernetesConfig config;
        try
        {
            config = KubernetesConfig.Load();
        }
        catch (Exception ex) when (KubernetesConfig.IsConfigError(ex))
        {
            throw new StartupException(ExitCodes.Usage,
                $"{AgentSettings.Attribution.Flag} {AgentOptions.AttributionKubernetes} needs the pod's service account token or $KUBECONFIG: {ex.Message}");
        }
        var watcher = new KubernetesPodWatcher(new KubernetesApi(config), node, pods, logger);
        _stop = new CancellationTokenSource();
        _watching = Task.Run(() => watcher.RunAsync(_stop.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_stop is null || _watching is null)
            return;
        await _stop.CancelAsync().ConfigureAwait(false);
        await _watching.WaitAsync(cancellationToken).ConfigureAwait(false);
        _stop.Dispose();
    }
}

/// <summary>The resolver as a service: its value is null when attribution is off.</summary>
public sealed class PodAttributionSlot(PodAttribution? value)
{
    public PodAttribution? Value { get; } = value;
}
