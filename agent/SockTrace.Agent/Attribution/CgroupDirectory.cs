namespace SockTrace.Agent.Attribution;

/// <summary>
/// Maps cgroup ids, as bpf_get_current_cgroup_id() returns them, to cgroup v2 paths. On
/// cgroup v2 that id is the kernfs node id of the cgroup's directory, which is also its
/// inode number (kernel commit 67c0496e87d1, "kernfs: convert kernfs_node->id from union
/// kernfs_node_id to u64", 5.5), so a walk of the hierarchy stat-ing each directory finds it.
/// The map is rebuilt by a walk when an id is missing: at once for an id newer than any the
/// last walk saw (a container that just started: its first accepts are attributed too), else
/// at most once per <c>minRescanInterval</c>. It holds at most <c>maxCgroups</c> entries, so
/// an id that is never found (a cgroup already gone) costs a dictionary miss, not a walk per record.
/// Used from one thread.
/// </summary>
public sealed class CgroupDirectory(string root, int maxCgroups = 100_000, TimeSpan? minRescanInterval = null)
{
    private readonly TimeSpan _minRescanInterval = minRescanInterval ?? TimeSpan.FromSeconds(1);
    private Dictionary<ulong, string> _paths = [];
    private long _lastScan = long.MinValue;
    private ulong _newestSeen;

    /// <summary>The cgroup v2 mount this directory walks.</summary>
    public string Root { get; } = root;

    /// <summary>Walks done so far.</summary>
    public int Scans { get; private set; }

    /// <summary>
    /// The cgroup v2 hierarchy under <paramref name="mount"/>: the mount itself on a unified
    /// host, or its "unified" directory on a hybrid (v1 controllers plus v2) host, where
    /// bpf_get_current_cgroup_id() still reports the v2 cgroup. Null when neither exists.
    /// </summary>
    public static string? FindRoot(string mount = "/sys/fs/cgroup")
    {
        foreach (string candidate in new[] { mount, Path.Combine(mount, "unified") })
        {
            // cgroup.controllers exists only at the root of a v2 hierarchy's directories.
            if (File.Exists(Path.Combine(candidate, "cgroup.controllers")))
                return candidate;
        }
        return null;
    }

    /// <summary>The cgroup's path relative to the hierarchy ("/" for its root), or null.</summary>
    public string? PathOf(ulong cgroupId)
    {
        if (_paths.TryGetValue(cgroupId, out string? path))
            return path;
        long now = Environment.TickCount64;
        // kernfs numbers its nodes in increasing order (idr_alloc_cyclic() in
        // kernfs_new_node(), fs/kernfs/dir.c; the high 32 bits count wraps of the low ones),
        // so an id above every one the last walk saw names a cgroup made since. Each such walk
        // moves the mark past that id, found or not: there are no more of them than cgroups made.
        bool madeSinceTheWalk = cgroupId > _newestSeen;
        if (!madeSinceTheWalk && _lastScan != long.MinValue && now - _lastScan < _minRescanInterval.TotalMilliseconds)
            return null;
        _lastScan = now;
        _paths = Scan();
        Scans++;
        _newestSeen = Math.Max(cgroupId, _paths.Count == 0 ? 0 : _paths.Keys.Max());
        return _paths.GetValueOrDefault(cgroupId);
    }

    private Dictionary<ulong, string> Scan()
    {
        var paths = new Dictionary<ulong, string>();
        var pending = new Stack<string>();
        pending.Push(Root);
        while (pending.Count > 0 && paths.Count < maxCgroups)
        {
            string dir = pending.Pop();
            if (Interop.Libc.Inode(dir) is not { } inode)
                continue; // removed while we walked
            string relative = Path.GetRelativePath(Root, dir);
            paths[inode] = relative == "." ? "/" : "/" + relative;
            try
            {
                foreach (string child in Directory.EnumerateDirectories(dir))
                    pending.Push(child);
            }
            catch (Exception ex) when (ex is DirectoryNotFoundException or IOException or UnauthorizedAccessException)
            {
                // Removed or unreadable: its subtree cannot hold a live task we could name.
            }
        }
        return paths;
    }
}
