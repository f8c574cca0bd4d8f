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

    public static PrometheusRule PrometheusRule => Strict<PrometheusRule>(Text("prometheusrule.yaml"));

    /// <summary>`kubectl kustomize DIR`: the documents an apply -k would send, each parsed strictly.</summary>
    public static List<object> Render(string directory)
    {
        var (code, output) = Host.Run(Host.Which("kubectl") ?? "kubectl", ["kustomize", directory]);
        Assert.True(code == 0, $"kubectl kustomize {directory} ({code}; kubectl ships kustomize):\n{output}");
        return [.. output.Split("\n---\n").Where(d => d.Trim().Length > 0).Select(Parse)];
    }

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
            "PrometheusRule" => Strict<PrometheusRule>(yaml),
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
    public string? Scheme { get; set; }
    public string? BearerTokenFile { get; set; }
    public TlsConfig? TlsConfig { get; set; }
    public List<Relabeling> Relabelings { get; set; } = [];
}

internal sealed class TlsConfig
{
    public string? ServerName { get; set; }
    public SecretOrConfigMap? Ca { get; set; }
}

internal sealed class SecretOrConfigMap
{
    public SecretKeySelector? Secret { get; set; }
}

internal sealed class SecretKeySelector
{
    public string Name { get; set; } = "";
    public string Key { get; set; } = "";
}

internal sealed class PrometheusRule
{
    public string ApiVersion { get; set; } = "";
    public string Kind { get; set; } = "";
    public ObjectMeta Metadata { get; set; } = new();
    public PrometheusRuleSpec Spec { get; set; } = new();
}

internal sealed class PrometheusRuleSpec
{
    public List<RuleGroup> Groups { get; set; } = [];
}

internal sealed class RuleGroup
{
    public string Name { get; set; } = "";
    public List<AlertRule> Rules { get; set; } = [];
}

internal sealed class AlertRule
{
    public string Alert { get; set; } = "";
    public string Expr { get; set; } = "";
    public string? For { get; set; }
    public Dictionary<string, string> Labels { get; set; } = [];
    public Dictionary<string, string> Annotations { get; set; } = [];
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
