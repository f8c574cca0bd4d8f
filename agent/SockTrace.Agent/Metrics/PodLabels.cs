using SockTrace.Agent.Attribution;

namespace SockTrace.Agent.Metrics;

/// <summary>The namespace, pod and container labels attribution adds to a series.</summary>
internal static class PodLabels
{
    /// <summary>A host process, or a container of no known pod: the three labels empty.</summary>
    public static readonly PodContainer None = new("", "", "", "");

    public static KeyValuePair<string, object?>[] Append(KeyValuePair<string, object?>[] tags, PodContainer pod) =>
        [.. tags, new("namespace", pod.Namespace), new("pod", pod.Pod), new("container", pod.Container)];
}
