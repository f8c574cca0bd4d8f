using k8s;

namespace SockTrace.Agent.Hosting;

/// <summary>How the agent reaches the API server, for pod attribution and for reviews of
/// scrapers alike: $KUBECONFIG when set (an agent outside the cluster, the tests, the soak),
/// else the pod's service account.</summary>
internal static class KubernetesConfig
{
    public static KubernetesClientConfiguration Load() =>
        Environment.GetEnvironmentVariable("KUBECONFIG") is { Length: > 0 } kubeconfig
            ? KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig)
            : KubernetesClientConfiguration.InClusterConfig();

    /// <summary>What <see cref="Load"/> throws when neither is usable.</summary>
    public static bool IsConfigError(Exception ex) =>
        ex is k8s.Exceptions.KubeConfigException or IOException or UnauthorizedAccessException;
}
