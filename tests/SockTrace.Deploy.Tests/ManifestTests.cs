using k8s.Models;
using SockTrace.Deploy.Tests.Support;

namespace SockTrace.Deploy.Tests;

/// <summary>deploy/ parses strictly, and the DaemonSet grants exactly what the agent needs.</summary>
public sealed class ManifestTests
{
    private const string Namespace = "socktrace";
    // /sys/fs/cgroup: --attribution maps each record's cgroup id to the host's cgroup
    // directory of that inode, whose name holds the container id; read-only like the others.
    private static readonly string[] AllowedHostPaths = ["/sys/fs/cgroup", "/sys/kernel/btf", "/sys/kernel/tracing"];

    public static TheoryData<string> Files => [.. Manifests.Files.Select(f => Path.GetFileName(f))];

    [Theory]
    [MemberData(nameof(Files))]
    public void ParsesStrictlyWithItsTypedModel(string file)
    {
        object manifest = Manifests.Parse(Manifests.Text(file));
        if (manifest is V1ClusterRole or V1ClusterRoleBinding)
        {
            // Cluster-scoped: a namespace there would be ignored, and would mislead.
            Assert.Null(((IMetadata<V1ObjectMeta>)manifest).Metadata.NamespaceProperty);
            return;
        }
        string? ns = manifest switch
        {
            V1Namespace n => n.Metadata.Name,
            IMetadata<V1ObjectMeta> m => m.Metadata.NamespaceProperty,
            ServiceMonitor m => m.Metadata.Namespace,
            PrometheusRule m => m.Metadata.Namespace,
            _ => null,
        };
        Assert.Equal(Namespace, ns);
    }

    [Fact]
    public void StrictParsingRejectsAnUnknownField()
    {
        string daemonSet = Manifests.Text("daemonset.yaml").Replace("      tolerations:", "      tolerationz:");
        Assert.ThrowsAny<Exception>(() => Manifests.Parse(daemonSet));
        string monitor = Manifests.Text("servicemonitor.yaml").Replace("      interval: 30s", "      intervall: 30s");
        Assert.ThrowsAny<Exception>(() => Manifests.Parse(monitor));
    }

    [Fact]
    public void KustomizationListsEveryManifest()
    {
        var kustomization = Manifests.Kustomization;
        Assert.Equal("kustomize.config.k8s.io/v1beta1", kustomization.ApiVersion);
        Assert.Equal("Kustomization", kustomization.Kind);
        Assert.Equal(Manifests.Files.Select(f => Path.GetFileName(f)).Order(), kustomization.Resources.Order());
        var image = Assert.Single(kustomization.Images);
        Assert.Equal(Container.Image.Split(':')[0], image.Name);
    }

    [Fact]
    public void ContainerHoldsOnlyBpfAndPerfmonAsUidZero()
    {
        var pod = Manifests.DaemonSet.Spec.Template.Spec;
        Assert.NotEqual(true, pod.HostNetwork);
        Assert.NotEqual(true, pod.HostPID);
        Assert.NotEqual(true, pod.HostIPC);
        // The token is for reading pods (--attribution kubernetes); RbacGrantsOnlyReadingPods bounds it.
        Assert.True(pod.AutomountServiceAccountToken);
        Assert.False(Manifests.Load<V1ServiceAccount>("serviceaccount.yaml").AutomountServiceAccountToken);
        Assert.Equal("RuntimeDefault", pod.SecurityContext.SeccompProfile.Type);

        var security = Container.SecurityContext;
        Assert.NotEqual(true, security.Privileged);
        Assert.Equal(["BPF", "PERFMON"], security.Capabilities.Add.Order());
        Assert.Equal(["ALL"], security.Capabilities.Drop);
        Assert.Equal(0, security.RunAsUser);
        Assert.False(security.AllowPrivilegeEscalation);
        Assert.True(security.ReadOnlyRootFilesystem);
        Assert.Null(security.ProcMount);
        Assert.Null(security.SeLinuxOptions);
    }

    [Fact]
    public void MountsOnlyBtfTracefsAndCgroupsReadOnly()
    {
        var pod = Manifests.DaemonSet.Spec.Template.Spec;
        var volumes = pod.Volumes.ToDictionary(v => v.Name);
        Assert.All(volumes.Values, v =>
        {
            Assert.NotNull(v.HostPath);
            Assert.Equal("Directory", v.HostPath.Type);
        });
        Assert.Equal(AllowedHostPaths, volumes.Values.Select(v => v.HostPath.Path).Order());
        Assert.Equal(AllowedHostPaths, Container.VolumeMounts.Select(m => m.MountPath).Order());
        Assert.All(Container.VolumeMounts, m =>
        {
            Assert.True(m.ReadOnlyProperty, $"{m.MountPath} must be read-only");
            Assert.Equal(volumes[m.Name].HostPath.Path, m.MountPath);
            Assert.Null(m.MountPropagation);
        });
    }

    [Fact]
    public void RbacGrantsOnlyReadingPodsToTheAgentsServiceAccount()
    {
        var role = Manifests.Load<V1ClusterRole>("clusterrole.yaml");
        var rule = Assert.Single(role.Rules);
        Assert.Equal([""], rule.ApiGroups);
        Assert.Equal(["pods"], rule.Resources);
        Assert.Equal(["get", "list", "watch"], rule.Verbs.Order());
        Assert.Null(rule.ResourceNames);
        Assert.Null(rule.NonResourceURLs);
        Assert.Null(role.AggregationRule);

        var binding = Manifests.Load<V1ClusterRoleBinding>("clusterrolebinding.yaml");
        Assert.Equal(("rbac.authorization.k8s.io", "ClusterRole", role.Metadata.Name), (binding.RoleRef.ApiGroup, binding.RoleRef.Kind, binding.RoleRef.Name));
        var subject = Assert.Single(binding.Subjects);
        var serviceAccount = Manifests.Load<V1ServiceAccount>("serviceaccount.yaml");
        Assert.Equal(("ServiceAccount", serviceAccount.Metadata.Name, Namespace), (subject.Kind, subject.Name, subject.NamespaceProperty));
        Assert.Equal(serviceAccount.Metadata.Name, Manifests.DaemonSet.Spec.Template.Spec.ServiceAccountName);
    }

    [Fact]
    public void AttributesToPodsFromTheNodesName()
    {
        var attribution = Assert.Single(Container.Env, e => e.Name == "SOCKTRACE_ATTRIBUTION");
        Assert.Equal("kubernetes", attribution.Value);
        Assert.Contains(Container.Env, e => e.Name == "NODE_NAME");
    }

    [Fact]
    public void RunsOnEveryNodeWithItsNameProbesAndResources()
    {
        var pod = Manifests.DaemonSet.Spec.Template.Spec;
        var toleration = Assert.Single(pod.Tolerations);
        Assert.Equal("Exists", toleration.OperatorProperty);
        Assert.Null(toleration.Key);
        Assert.Null(toleration.Effect);

        var nodeName = Assert.Single(Container.Env, e => e.Name == "NODE_NAME");
        Assert.Equal("spec.nodeName", nodeName.ValueFrom.FieldRef.FieldPath);

        var port = Assert.Single(Container.Ports);
        Assert.Equal(("metrics", 9464), (port.Name, port.ContainerPort));
        foreach (var probe in new[] { Container.ReadinessProbe, Container.LivenessProbe })
        {
            Assert.Equal("/healthz", probe.HttpGet.Path);
            Assert.Equal("metrics", probe.HttpGet.Port.Value);
        }

        foreach (string resource in new[] { "cpu", "memory" })
        {
            var request = Container.Resources.Requests[resource].ToDecimal();
            var limit = Container.Resources.Limits[resource].ToDecimal();
            Assert.True(request > 0 && request <= limit, $"{resource}: request {request} must be set and within the limit {limit}");
        }
        Assert.Equal(Manifests.DaemonSet.Spec.Selector.MatchLabels, Manifests.DaemonSet.Spec.Template.Metadata.Labels);
    }

    [Fact]
    public void ServiceAndServiceMonitorReachThePods()
    {
        var podLabels = Manifests.DaemonSet.Spec.Template.Metadata.Labels;
        var service = Manifests.Load<V1Service>("service.yaml");
        Assert.Equal("None", service.Spec.ClusterIP);
        Assert.All(service.Spec.Selector, kv => Assert.Equal(kv.Value, podLabels[kv.Key]));
        var servicePort = Assert.Single(service.Spec.Ports);
        Assert.Equal(("metrics", 9464, "metrics"), (servicePort.Name, servicePort.Port, servicePort.TargetPort.Value));

        var monitor = Manifests.ServiceMonitor;
        Assert.Equal(("monitoring.coreos.com/v1", "ServiceMonitor"), (monitor.ApiVersion, monitor.Kind));
        Assert.All(monitor.Spec.Selector.MatchLabels, kv => Assert.Equal(kv.Value, service.Metadata.Labels[kv.Key]));
        Assert.Equal([Namespace], monitor.Spec.NamespaceSelector.MatchNames);
        var endpoint = Assert.Single(monitor.Spec.Endpoints);
        Assert.Equal(("metrics", "/metrics"), (endpoint.Port, endpoint.Path));
        var relabel = Assert.Single(endpoint.Relabelings);
        Assert.Equal(["__meta_kubernetes_pod_node_name"], relabel.SourceLabels);
        Assert.Equal(("node", "replace"), (relabel.TargetLabel, relabel.Action));
    }

    [Fact]
    public void SystemdUnitVerifiesAndGrantsTheSameCapabilities()
    {
        string unit = File.ReadAllText(Repo.Path("deploy", "systemd", "socktrace.service"));
        string[] caps = [.. Container.SecurityContext.Capabilities.Add.Select(c => "CAP_" + c).Order()];
        foreach (string key in new[] { "CapabilityBoundingSet", "AmbientCapabilities" })
        {
            string line = Assert.Single(unit.Split('\n'), l => l.StartsWith(key + "=", StringComparison.Ordinal));
            Assert.Equal(caps, line[(key.Length + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Order());
        }
        Assert.Contains("\nNoNewPrivileges=yes\n", unit);
        Assert.Contains("\nProtectSystem=strict\n", unit);

        string analyze = Host.Which("systemd-analyze") ?? throw new InvalidOperationException("systemd-analyze is missing (Debian package systemd)");
        string dir = Directory.CreateTempSubdirectory("socktrace-unit-").FullName;
        try
        {
            string copy = Path.Combine(dir, "socktrace.service");
            // verify checks that ExecStart's program exists: this machine has no install in /opt.
            File.WriteAllText(copy, unit.Replace("ExecStart=/opt/socktrace/socktrace", "ExecStart=/bin/true", StringComparison.Ordinal));
            var (code, output) = Host.Run(analyze, ["verify", copy]);
            Assert.True(code == 0 && output.Length == 0, $"systemd-analyze verify ({code}):\n{output}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static V1Container Container => Assert.Single(Manifests.DaemonSet.Spec.Template.Spec.Containers);
}
