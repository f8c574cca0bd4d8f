namespace SockTrace.Agent.Attribution;

/// <summary>
/// cgroup id to container id and pod UID, cached per id. Records arrive by the thousand per
/// second from a handful of cgroups, so each id is parsed once. At most
/// <c>maxCached</c> ids are kept; past that the cache is dropped and refilled, which bounds
/// memory on a node that churns through containers. Used from the reader thread only.
/// </summary>
public sealed class CgroupAttribution(CgroupDirectory directory, int maxCached = 10_000)
{
    private static readonly ContainerCgroup None = new(null, null);
    private readonly Dictionary<ulong, ContainerCgroup> _cache = [];

    public CgroupDirectory Directory { get; } = directory;

    /// <summary>The container and pod of <paramref name="cgroupId"/>; both null for a host
    /// process or a cgroup that is already gone.</summary>
    public ContainerCgroup Resolve(ulong cgroupId)
    {
        if (_cache.TryGetValue(cgroupId, out var found))
            return found;
        // A cgroup not found now may appear later (created after the last walk), so a miss
        // is not cached: the directory's rescan interval bounds what misses cost.
        if (Directory.PathOf(cgroupId) is not { } path)
            return None;
        if (_cache.Count >= maxCached)
            _cache.Clear();
        return _cache[cgroupId] = CgroupPath.Parse(path);
    }
}
