using k8s;
using k8s.Models;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace SockTrace.Deploy.Tests.Support;

/// <summary>
/// deploy/*.yaml, each parsed strictly by the model of its kind: a field the model does not
/// know is an error, as the API server's strict field validation would report it.
/// </summary>
internal static class Manifests
{
    public static readonly string Directory = Repo.Path("deploy");

    public static IEnumerable<string> Files =>
        System.IO.Directory.GetFiles(Directory, "*.yaml").Where(f => System.IO.Path.GetFileName(f) != "kustomization.yaml").Order();

    public static string Text(string file) => File.ReadAllText(System.IO.Path.Combine(Directory, file));

    public static V1DaemonSet DaemonSet => Load<V1DaemonSet>("daemonset.yaml");

    public static ServiceMonitor ServiceMonitor => Strict<ServiceMonitor>(Text("servicemonitor.yaml"));

    public static Kustomization Kustomization => Strict<Kustomization>(Text("kustomization.yaml"));

    public static T Load<T>(string file) => KubernetesYaml.Deserialize<T>(Text(file), strict: true);

    /// <summary>Parses a manifest by its kind; throws on unknown kinds and unknown fields.</summary>
    public static object Parse(string yaml)
    {
        string kind = Strict<Dictionary<string, object>>(yaml).TryGetValue("kind", out var k) ? (string)k : "";
        return kind switch
        {
            "Namespace" => KubernetesYaml.Deserialize<V1Namespace>(yaml, strict: true),
            "ServiceAccount" => KubernetesYaml.Deserialize<V1ServiceAccount>(yaml, strict: true),
            "ClusterRole" => KubernetesYaml.Deserialize<V1ClusterRole>(yaml, strict: true),
            "ClusterRoleBinding" => KubernetesYaml.Deserialize<V1ClusterRoleBinding>(yaml, strict: true),
            "DaemonSet" => KubernetesYaml.Deserialize<V1DaemonSet>(yaml, strict: true),
            "Service" => KubernetesYaml.Deserialize<V1Service>(yaml, strict: true),
            "ServiceMonitor" => Strict<ServiceMonitor>(yaml),
            _ => throw new InvalidDataException($"no model for kind '{kind}'"),
        };
    }

    /// <summary>YamlDotNet without IgnoreUnmatchedProperties: unknown fields throw.</summary>
    public static T Strict<T>(string yaml) =>
        new DeserializerBuilder().WithNamingConvention(CamelCaseNamingConvention.Instance).Build().Deserialize<T>(yaml);
}

// The CRDs have no typed model in KubernetesClient: these carry exactly the fields deploy/ uses.
internal sealed class ObjectMeta
{
    public string Name { get; set; } = "";
    public string? Namespace { get; set; }
    public Dictionary<string, string> Labels { get; set; } = [];
}

internal sealed class ServiceMonitor
{
    public string ApiVersion { get; set; } = "";
    public string Kind { get; set; } = "";
    public ObjectMeta Metadata { get; set; } = new();
    public ServiceMonitorSpec Spec { get; set; } = new();
}

internal sealed class ServiceMonitorSpec
{
    public LabelSelector Selector { get; set; } = new();
    public NamespaceSelector NamespaceSelector { get; set; } = new();
    public List<Endpoint> Endpoints { get; set; } = [];
}

internal sealed class LabelSelector
{
    public Dictionary<string, string> MatchLabels { get; set; } = [];
}

internal sealed class NamespaceSelector
{
    public List<string> MatchNames { get; set; } = [];
}

internal sealed class Endpoint
{
    public string Port { get; set; } = "";
    public string Path { get; set; } = "";
    public string Interval { get; set; } = "";
    public List<Relabeling> Relabelings { get; set; } = [];
}

internal sealed class Relabeling
{
    public List<string> SourceLabels { get; set; } = [];
    public string TargetLabel { get; set; } = "";
    public string Action { get; set; } = "";
}

internal sealed class Kustomization
{
    public string ApiVersion { get; set; } = "";
    public string Kind { get; set; } = "";
    public List<string> Resources { get; set; } = [];
    public List<KustomizeImage> Images { get; set; } = [];
}

internal sealed class KustomizeImage
{
    public string Name { get; set; } = "";
    public string? NewName { get; set; }
    public string? NewTag { get; set; }
}
