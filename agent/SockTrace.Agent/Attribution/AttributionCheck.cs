using SockTrace.Agent.Hosting;

namespace SockTrace.Agent.Attribution;

/// <summary>One line of `socktrace check` for --attribution kubernetes: what was checked,
/// whether it holds, what was found, and the exit code when it does not.</summary>
public sealed record AttributionCheckResult(string Name, bool Ok, string Detail, int ExitCode = ExitCodes.Ok);

/// <summary>
/// What --attribution kubernetes needs, checked in the order the agent needs it, each
/// answered with what was found: the host's cgroup v2 hierarchy (cgroup id to container),
/// the node's name (which pods to watch), the service account's credentials, and a list of
/// this node's pods through the API server, which fails on a missing RBAC rule or an
/// unreachable server long before a pod label would quietly stay empty.
/// </summary>
public static class AttributionCheck
{
    public static List<AttributionCheckResult> Run(string cgroupMount, string? nodeName, Func<KubernetesApi> connect, TimeSpan timeout)
    {
        var results = new List<AttributionCheckResult>();
        string? root = CgroupDirectory.FindRoot(cgroupMount);
        results.Add(root is null
            ? new("cgroup v2", false, $"no cgroup v2 hierarchy at {cgroupMount} (mount the host's read-only)", ExitCodes.KernelUnsupported)
            : new("cgroup v2", true, root));
        if (string.IsNullOrEmpty(nodeName))
        {
            results.Add(new("node name", false, "NODE_NAME is not set (the pod's spec.nodeName through the downward API)", ExitCodes.Usage));
            return results;
        }
        results.Add(new("node name", true, nodeName));
        KubernetesApi client;
        try
        {
            client = connect();
        }
        catch (Exception ex)
        {
            results.Add(new("api credentials", false, $"no service account credentials: {ex.Message}", ExitCodes.Usage));
            return results;
        }
        results.Add(new("api credentials", true, client.BaseUri.ToString()));
        try
        {
            using var cancel = new CancellationTokenSource(timeout);
            var pods = client.ListPodsAsync($"spec.nodeName={nodeName}", cancel.Token).GetAwaiter().GetResult();
            results.Add(new("pods on node", true, $"{pods.Items?.Count ?? 0} pod(s) on {nodeName}"));
        }
        catch (Exception ex)
        {
            string reason = ex is OperationCanceledException ? $"no answer within {timeout.TotalSeconds:0} s" : ex.Message;
            results.Add(new("pods on node", false, $"listing the pods of {nodeName} failed: {reason} (RBAC: list and watch pods)", ExitCodes.KubernetesApi));
        }
        return results;
    }
}
