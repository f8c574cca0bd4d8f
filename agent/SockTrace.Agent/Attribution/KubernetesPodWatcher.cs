using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace SockTrace.Agent.Attribution;

/// <summary>
/// Keeps a <see cref="PodIndex"/> current with the pods on one node: a list, then a watch
/// from the list's resourceVersion, then a fresh list whenever the watch ends (the server's
/// timeout, an error, a "410 Gone" for a version too old). Relisting one node's pods (at
/// most a few hundred) is cheap, and it is the one way to learn of deletions missed while no
/// watch was open. The field selector keeps the API server's work and the agent's memory to
/// this node's pods, which is also all the agent can see in its cgroups.
/// </summary>
public sealed partial class KubernetesPodWatcher(IKubernetes client, string nodeName, PodIndex index, ILogger logger)
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
                var list = await client.CoreV1.ListPodForAllNamespacesAsync(fieldSelector: FieldSelector, cancellationToken: cancellationToken).ConfigureAwait(false);
                index.Replace(list.Items);
                Interlocked.Increment(ref _lists);
                LogListed(list.Items.Count, nodeName);
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
        var events = client.CoreV1.WatchListPodForAllNamespacesAsync(
            fieldSelector: FieldSelector, resourceVersion: resourceVersion, timeoutSeconds: WatchTimeoutSeconds,
            onError: ex => LogFailed(ex.Message), cancellationToken: cancellationToken);
        await foreach (var (type, pod) in events.ConfigureAwait(false))
        {
            switch (type)
            {
                case WatchEventType.Added:
                case WatchEventType.Modified:
                    index.Upsert(pod);
                    break;
                case WatchEventType.Deleted:
                    index.Remove(pod);
                    break;
                case WatchEventType.Error:
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
