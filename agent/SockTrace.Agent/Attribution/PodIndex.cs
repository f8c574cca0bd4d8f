using SockTrace.Agent.Hosting;

namespace SockTrace.Agent.Attribution;

/// <summary>The Kubernetes names of a container: what the namespace, pod and container labels say.</summary>
public sealed record PodContainer(string Namespace, string Pod, string Container, string PodUid);

/// <summary>
/// The pods on this node by container id and by UID, from the API server's pod objects.
/// Written by the watcher's task, read by the record reader: every access takes the lock,
/// which is uncontended except while a pod changes.
/// </summary>
public sealed class PodIndex
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, PodContainer> _containers = [];
    private readonly Dictionary<string, (PodContainer Pod, string[] ContainerIds)> _pods = [];

    /// <summary>Raised, on the watcher's task, with the UID of each pod that is gone.</summary>
    public event Action<string>? PodRemoved;

    public int Pods
    {
        get { lock (_lock) return _pods.Count; }
    }

    /// <summary>
    /// The container a cgroup belongs to. A container the API has not reported yet (its
    /// status lags its start) or a cgroup with a pod but no container (the pod's own slice)
    /// is named by its pod, with an empty container name.
    /// </summary>
    public PodContainer? Find(ContainerCgroup cgroup)
    {
        lock (_lock)
        {
            if (cgroup.ContainerId is { } id && _containers.TryGetValue(id, out var found))
                return found;
            if (cgroup.PodUid is { } uid && _pods.TryGetValue(uid, out var pod))
                return pod.Pod;
            return null;
        }
    }

    /// <summary>Added or modified: the pod's containers are those its status lists now.</summary>
    public void Upsert(Pod pod)
    {
        if (pod.Metadata?.Uid is not { } uid)
            return;
        var podOnly = new PodContainer(pod.Metadata.Namespace ?? "", pod.Metadata.Name ?? "", "", uid);
        var containers = Statuses(pod)
            .Where(s => ContainerId(s.ContainerId) is not null)
            .Select(s => (Id: ContainerId(s.ContainerId)!, Container: podOnly with { Container = s.Name ?? "" }))
            .ToArray();
        lock (_lock)
        {
            RemoveLocked(uid);
            _pods[uid] = (podOnly, [.. containers.Select(c => c.Id)]);
            foreach (var (id, container) in containers)
                _containers[id] = container;
        }
    }

    public void Remove(Pod pod)
    {
        if (pod.Metadata?.Uid is not { } uid)
            return;
        bool removed;
        lock (_lock)
            removed = RemoveLocked(uid);
        if (removed)
            PodRemoved?.Invoke(uid);
    }

    /// <summary>A fresh list: pods absent from it were deleted while no watch was open.</summary>
    public void Replace(IEnumerable<Pod> pods)
    {
        var list = pods.ToList();
        var current = list.Select(p => p.Metadata?.Uid).OfType<string>().ToHashSet();
        List<string> gone;
        lock (_lock)
        {
            gone = [.. _pods.Keys.Where(uid => !current.Contains(uid))];
            foreach (string uid in gone)
                RemoveLocked(uid);
        }
        foreach (var pod in list)
            Upsert(pod);
        foreach (string uid in gone)
            PodRemoved?.Invoke(uid);
    }

    private bool RemoveLocked(string uid)
    {
        if (!_pods.Remove(uid, out var old))
            return false;
        foreach (string id in old.ContainerIds)
            _containers.Remove(id);
        return true;
    }

    private static IEnumerable<ContainerStatus> Statuses(Pod pod) =>
        (pod.Status?.ContainerStatuses ?? [])
            .Concat(pod.Status?.InitContainerStatuses ?? [])
            .Concat(pod.Status?.EphemeralContainerStatuses ?? []);

    /// <summary>"containerd://&lt;id&gt;", "cri-o://&lt;id&gt;", "docker://&lt;id&gt;": the id
    /// after the runtime's scheme, as the cgroup path names it.</summary>
    internal static string? ContainerId(string? statusId)
    {
        if (string.IsNullOrEmpty(statusId))
            return null;
        int at = statusId.IndexOf("://", StringComparison.Ordinal);
        string id = at < 0 ? statusId : statusId[(at + 3)..];
        return id.Length == 0 ? null : id;
    }
}
