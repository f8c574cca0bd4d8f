using Microsoft.Extensions.Logging;
using SockTrace.Agent.Hosting;

namespace SockTrace.Agent.Attribution;

/// <summary>
/// Keeps a <see cref="PodIndex"/> current with the pods on one node: a list, then a watch
/// from the list's resourceVersion, then a fresh list whenever the watch ends (the server's
/// timeout, an error, a "410 Gone" for a version too old). Relisting one node's pods (at
/// most a few hundred) is cheap, and it is the one way to learn of deletions missed while no
/// watch was open. The field selector keeps the API server's work and the agent's memory to
/// this node's pods, which is also all the agent can see in its cgroups.
/// </summary>
public sealed partial class KubernetesPodWatcher(KubernetesApi api, string nodeName, PodIndex index, ILogger logger)
{
    /// <summary>How long the server keeps one watch open before the agent relists.</summary>
    public int WatchTimeoutSeconds { get; init; } = 300;

    /// <summary>Pause after a failed list or watch, so an unreachable API server is not hammered.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Lists completed; a test waits on this.</summary>
    public int Lists => Volatile.Read(ref _lists);

    private int _lists;

    private string FieldSelector => $"spec.nodeName={nodeName}";

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var list = await api.ListPodsAsync(FieldSelector, cancellationToken).ConfigureAwait(false);
                var pods = list.Items ?? [];
                index.Replace(pods);
                Interlocked.Increment(ref _lists);
                LogListed(pods.Count, nodeName);
                await WatchAsync(list.Metadata?.ResourceVersion, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogFailed(ex.Message);
                try
                {
                    await Task.Delay(RetryDelay, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private async Task WatchAsync(string? resourceVersion, CancellationToken cancellationToken)
    {
        var events = api.WatchPodsAsync(FieldSelector, resourceVersion, WatchTimeoutSeconds, cancellationToken);
        await foreach (var e in events.ConfigureAwait(false))
        {
            switch (e.Type)
            {
                case "ADDED" or "MODIFIED" when e.Object is { } pod:
                    index.Upsert(pod);
                    break;
                case "DELETED" when e.Object is { } pod:
                    index.Remove(pod);
                    break;
                case "ERROR":
                    // Usually 410 Gone: the version is too old to watch from. Relist.
                    return;
            }
        }
    }

    [LoggerMessage(EventId = 500, Level = LogLevel.Information, Message = "Listed {Pods} pods on node {Node}")]
    private partial void LogListed(int pods, string node);

    [LoggerMessage(EventId = 501, Level = LogLevel.Warning, Message = "Kubernetes pod list/watch failed, retrying: {Reason}")]
    private partial void LogFailed(string reason);
}
