namespace SockTrace.Agent.Attribution;

/// <summary>What a cgroup path says about the container and pod it belongs to.</summary>
/// <param name="ContainerId">64 lower-case hex digits, as the runtime and the pod's
/// status.containerStatuses[].containerID name it; null when the path names no container.</param>
/// <param name="PodUid">The pod's metadata.uid with dashes; null outside a kubepods tree.</param>
public sealed record ContainerCgroup(string? ContainerId, string? PodUid);

/// <summary>
/// Reads container ids and pod UIDs out of cgroup v2 paths, as the runtimes name them:
/// <list type="bullet">
/// <item>systemd driver: <c>/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod&lt;uid, '-' as '_'&gt;.slice/cri-containerd-&lt;id&gt;.scope</c>,
/// CRI-O <c>crio-&lt;id&gt;.scope</c>, Docker <c>docker-&lt;id&gt;.scope</c>, Podman <c>libpod-&lt;id&gt;.scope</c>;</item>
/// <item>cgroupfs driver: <c>/kubepods/burstable/pod&lt;uid&gt;/&lt;id&gt;</c>, Docker <c>/docker/&lt;id&gt;</c>.</item>
/// </list>
/// The innermost container wins: in kind or Docker-in-Docker the outer segments name the
/// node's own container. A process in a sub-cgroup of a container (systemd inside it,
/// Podman's <c>/container</c> leaf) belongs to that container.
/// </summary>
public static class CgroupPath
{
    private const int IdLength = 64;

    // Scopes that are the container itself. CRI-O's "crio-conmon-<id>.scope" holds its
    // monitor process, outside the container: "conmon-<id>" is not an id, so it names none.
    private static readonly string[] ScopePrefixes = ["cri-containerd-", "crio-", "docker-", "libpod-"];

    public static ContainerCgroup Parse(ReadOnlySpan<char> path)
    {
        string? container = null;
        string? pod = null;
        foreach (var range in path.Split('/'))
        {
            var segment = path[range];
            if (segment.IsEmpty)
                continue;
            if (ContainerIdOf(segment) is { } id)
            {
                container = id;
            }
            else if (PodUidOf(segment) is { } uid)
            {
                pod = uid;
                // A pod inside an outer container (Docker-in-Docker): the outer one is not the pod's.
                container = null;
            }
        }
        return new ContainerCgroup(container, pod);
    }

    private static string? ContainerIdOf(ReadOnlySpan<char> segment)
    {
        if (segment.EndsWith(".scope", StringComparison.Ordinal))
        {
            var name = segment[..^".scope".Length];
            foreach (string prefix in ScopePrefixes)
            {
                if (name.StartsWith(prefix, StringComparison.Ordinal) && IsId(name[prefix.Length..]))
                    return name[prefix.Length..].ToString();
            }
            return null;
        }
        // cgroupfs driver: the bare id is the directory name.
        return IsId(segment) ? segment.ToString() : null;
    }

    /// <summary>"pod&lt;uid&gt;" (cgroupfs) or "...-pod&lt;uid with '_'&gt;.slice" (systemd).</summary>
    private static string? PodUidOf(ReadOnlySpan<char> segment)
    {
        ReadOnlySpan<char> uid;
        if (segment.EndsWith(".slice", StringComparison.Ordinal))
        {
            var name = segment[..^".slice".Length];
            int at = name.LastIndexOf("-pod", StringComparison.Ordinal);
            if (at < 0 || !name.Contains("kubepods", StringComparison.Ordinal))
                return null;
            uid = name[(at + "-pod".Length)..];
        }
        else if (segment.StartsWith("pod", StringComparison.Ordinal))
        {
            uid = segment["pod".Length..];
        }
        else
        {
            return null;
        }
        return IsUid(uid) ? uid.ToString().Replace('_', '-') : null;
    }

    private static bool IsId(ReadOnlySpan<char> s) => s.Length == IdLength && !s.ContainsAnyExcept("0123456789abcdef");

    /// <summary>A UUID (8-4-4-4-12, '-' or '_'), or 32 hex digits: the config hash a static
    /// pod's mirror carries as its UID in the kubelet's cgroup names.</summary>
    private static bool IsUid(ReadOnlySpan<char> s)
    {
        if (s.Length == 32)
            return !s.ContainsAnyExcept("0123456789abcdef");
        if (s.Length != 36)
            return false;
        for (int i = 0; i < s.Length; i++)
        {
            bool dash = i is 8 or 13 or 18 or 23;
            if (dash ? s[i] is not ('-' or '_') : !char.IsAsciiHexDigitLower(s[i]))
                return false;
        }
        return true;
    }
}
