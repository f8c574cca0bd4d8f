using SockTrace.Agent.Attribution;

namespace SockTrace.Tests.Attribution;

/// <summary>The walk over a plain directory tree: inode numbers work the same as on cgroupfs.</summary>
public sealed class CgroupDirectoryTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("socktrace-cgroups-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private ulong Make(string relative)
    {
        string dir = Path.Combine(_root, relative.TrimStart('/'));
        Directory.CreateDirectory(dir);
        return Inode(dir);
    }

    private static ulong Inode(string path)
    {
        var (code, output) = Run("stat", "-c", "%i", path);
        Assert.Equal(0, code);
        return ulong.Parse(output.Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static (int Code, string Output) Run(string file, params string[] args)
    {
        var info = new System.Diagnostics.ProcessStartInfo(file) { RedirectStandardOutput = true };
        foreach (string a in args)
            info.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(info)!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output);
    }

    [Fact]
    public void FindsEachDirectoryByItsInode()
    {
        const string scope = "/kubepods.slice/kubepods-pod5f0e2b4c_9a1d_4e3f_8b7a_6c5d4e3f2a1b.slice/cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope";
        ulong id = Make(scope);
        ulong system = Make("/system.slice");
        var directory = new CgroupDirectory(_root);

        Assert.Equal(scope, directory.PathOf(id));
        Assert.Equal("/system.slice", directory.PathOf(system));
        Assert.Equal("/", directory.PathOf(Inode(_root)));
        Assert.Equal(1, directory.Scans);
    }

    [Fact]
    public void ACgroupCreatedAfterTheWalkIsFoundByTheNextOne()
    {
        var directory = new CgroupDirectory(_root, minRescanInterval: TimeSpan.Zero);
        Assert.Null(directory.PathOf(ulong.MaxValue));
        ulong id = Make("/late.scope");
        Assert.Equal("/late.scope", directory.PathOf(id));
        Assert.Equal(2, directory.Scans);
    }

    [Fact]
    public void MissesWalkAtMostOncePerInterval()
    {
        var directory = new CgroupDirectory(_root, minRescanInterval: TimeSpan.FromHours(1));
        for (int i = 0; i < 100; i++)
            Assert.Null(directory.PathOf(ulong.MaxValue - (ulong)i));
        Assert.Equal(1, directory.Scans);
    }

    [Fact]
    public void TheWalkStopsAtItsBound()
    {
        for (int i = 0; i < 20; i++)
            Make($"/c{i}");
        var directory = new CgroupDirectory(_root, maxCgroups: 5);
        directory.PathOf(ulong.MaxValue);
        int found = Enumerable.Range(0, 20).Count(i => directory.PathOf(Inode(Path.Combine(_root, $"c{i}"))) is not null);
        Assert.InRange(found, 1, 4);
    }

    [Fact]
    public void AttributionParsesTheResolvedPath()
    {
        ulong id = Make("/system.slice/docker-fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210.scope");
        var attribution = new CgroupAttribution(new CgroupDirectory(_root));
        Assert.Equal("fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210", attribution.Resolve(id).ContainerId);
        Assert.Equal(new ContainerCgroup(null, null), attribution.Resolve(ulong.MaxValue));
    }

    [Fact]
    public void FindsTheUnifiedHierarchyOnAHybridHost()
    {
        Make("/unified");
        File.WriteAllText(Path.Combine(_root, "unified", "cgroup.controllers"), "");
        Assert.Equal(Path.Combine(_root, "unified"), CgroupDirectory.FindRoot(_root));
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "");
        Assert.Equal(_root, CgroupDirectory.FindRoot(_root));
        Assert.Null(CgroupDirectory.FindRoot(Path.Combine(_root, "system.slice")));
    }
}
