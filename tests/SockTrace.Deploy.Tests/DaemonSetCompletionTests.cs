using k8s.Models;
using SockTrace.Deploy.Tests.Support;

namespace SockTrace.Deploy.Tests;

/// <summary>The init container, the resources and the alerts of deploy/, and the TLS and
/// authorization overlay deploy-secure/ rendered by kustomize and parsed like the base.</summary>
public sealed class DaemonSetCompletionTests
{
    private static V1PodSpec Pod => Manifests.DaemonSet.Spec.Template.Spec;
    private static V1Container Agent => Pod.Containers.Single();

    [Fact]
    public void InitContainerChecksWithTheAgentsImagePrivilegesMountsAndSettings()
    {
        var init = Assert.Single(Pod.InitContainers);
        Assert.Equal(["check"], init.Args);
        Assert.Null(init.Command);
        Assert.Equal(Agent.Image, init.Image);
        Assert.Equal(Agent.SecurityContext.Capabilities.Add.Order(), init.SecurityContext.Capabilities.Add.Order());
        Assert.Equal(["ALL"], init.SecurityContext.Capabilities.Drop);
        Assert.Equal((0L, false, false, true), (init.SecurityContext.RunAsUser, init.SecurityContext.Privileged, init.SecurityContext.AllowPrivilegeEscalation, init.SecurityContext.ReadOnlyRootFilesystem));
        Assert.Equal(Agent.VolumeMounts.Select(m => (m.Name, m.MountPath, m.ReadOnlyProperty)), init.VolumeMounts.Select(m => (m.Name, m.MountPath, m.ReadOnlyProperty)));
        Assert.Equal(Agent.Env.Select(e => (e.Name, e.Value, e.ValueFrom?.FieldRef?.FieldPath)), init.Env.Select(e => (e.Name, e.Value, e.ValueFrom?.FieldRef?.FieldPath)));
    }

    [Fact]
    public void ResourcesAreTheBenchmarksNumbers()
    {
        // BENCHMARKS.md, "Footprint": VmRSS 39 MiB at 10k accepts/s, 60 ms of CPU over 10 s there;
        // the BPF maps 21 MiB on 2 CPUs; 39% of a core draining 5 M records/s.
        string text = Manifests.Text("daemonset.yaml");
        Assert.Contains("60 ms over 10 s at 10,000 accepts/s", text);
        Assert.Contains("VmRSS 39 MiB at 10,000 accepts/s", text);
        Assert.Contains("21 MiB on 2 CPUs", text);
        foreach (var container in Pod.Containers.Concat(Pod.InitContainers))
        {
            Assert.Equal("10m", container.Resources.Requests["cpu"].ToString());
            Assert.Equal("128Mi", container.Resources.Requests["memory"].ToString());
            Assert.Equal("500m", container.Resources.Limits["cpu"].ToString());
            Assert.Equal("256Mi", container.Resources.Limits["memory"].ToString());
        }
    }

    [Fact]
    public void PrometheusRuleAlertsOnLossesOverflowsRacesAndMissingHooks()
    {
        var rule = Manifests.PrometheusRule;
        Assert.Equal(("monitoring.coreos.com/v1", "PrometheusRule", "socktrace"), (rule.ApiVersion, rule.Kind, rule.Metadata.Namespace));
        var alerts = rule.Spec.Groups.SelectMany(g => g.Rules).ToList();
        Assert.Equal(["SockTraceFdRaces", "SockTraceHookNotAttached", "SockTraceListenOverflows", "SockTraceRingBufferDrops", "SockTraceUntrackedCalls"], alerts.Select(a => a.Alert).Order());
        Assert.All(alerts, a =>
        {
            Assert.False(string.IsNullOrWhiteSpace(a.Annotations.GetValueOrDefault("summary")), a.Alert);
            Assert.Contains(a.Labels.GetValueOrDefault("severity"), new[] { "info", "warning", "critical" });
        });
    }

    [Fact]
    public void SecureOverlayRendersAndParsesStrictly()
    {
        var documents = Manifests.Render(Repo.Path("deploy-secure"));
        var daemonSet = Assert.Single(documents.OfType<V1DaemonSet>());
        var agent = daemonSet.Spec.Template.Spec.Containers.Single();
        // The base is all there, unchanged but for the patches, and the two roles and their bindings.
        Assert.Equal(Manifests.Files.Count() + 4, documents.Count);
        Assert.Single(daemonSet.Spec.Template.Spec.InitContainers);
        Assert.Equal(Agent.SecurityContext.Capabilities.Add, agent.SecurityContext.Capabilities.Add);

        // TLS from the Secret's files, mounted as a directory so rotations reach the agent.
        Assert.Equal(["--tls-cert-file", "/etc/socktrace/tls/tls.crt", "--tls-key-file", "/etc/socktrace/tls/tls.key", "--auth-kubernetes"], agent.Args);
        var mount = Assert.Single(agent.VolumeMounts, m => m.Name == "tls");
        Assert.Equal(("/etc/socktrace/tls", true, null), (mount.MountPath, mount.ReadOnlyProperty, mount.SubPath));
        var volume = Assert.Single(daemonSet.Spec.Template.Spec.Volumes, v => v.Name == "tls");
        Assert.Equal("socktrace-tls", volume.Secret.SecretName);
        Assert.All(new[] { agent.ReadinessProbe, agent.LivenessProbe }, p => Assert.Equal(("HTTPS", "/healthz"), (p.HttpGet.Scheme, p.HttpGet.Path)));

        var endpoint = Assert.Single(Assert.Single(documents.OfType<ServiceMonitor>()).Spec.Endpoints);
        Assert.Equal(("metrics", "/metrics", "https"), (endpoint.Port, endpoint.Path, endpoint.Scheme));
        Assert.Equal("/var/run/secrets/kubernetes.io/serviceaccount/token", endpoint.BearerTokenFile);
        Assert.Equal("socktrace.socktrace.svc", endpoint.TlsConfig?.ServerName);
        Assert.Equal(("socktrace-tls", "ca.crt"), (endpoint.TlsConfig?.Ca?.Secret?.Name, endpoint.TlsConfig?.Ca?.Secret?.Key));
        Assert.Equal(["__meta_kubernetes_pod_node_name"], Assert.Single(endpoint.Relabelings).SourceLabels);

        // The agent's service account may create the two reviews, and nothing more than the base adds.
        var roles = documents.OfType<V1ClusterRole>().ToDictionary(r => r.Metadata.Name);
        var bindings = documents.OfType<V1ClusterRoleBinding>().ToList();
        var agentRules = bindings.Where(b => b.Subjects.Any(s => s.Kind == "ServiceAccount" && s.Name == "socktrace" && s.NamespaceProperty == "socktrace"))
            .SelectMany(b => roles[b.RoleRef.Name].Rules).ToList();
        Assert.Equal(
            ["/pods:get,list,watch", "authentication.k8s.io/tokenreviews:create", "authorization.k8s.io/subjectaccessreviews:create"],
            agentRules.SelectMany(r => r.Resources.Select(res => $"{string.Join(",", r.ApiGroups)}/{res}:{string.Join(",", r.Verbs)}")).Order());
        // The scraper may get /metrics, the URL the agent's SubjectAccessReview asks about.
        var reader = Assert.Single(roles["socktrace-metrics-reader"].Rules);
        Assert.Equal(["/metrics"], reader.NonResourceURLs);
        Assert.Equal(["get"], reader.Verbs);
    }
}
