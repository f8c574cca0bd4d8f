using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>
/// What a node can get wrong, each through the built agent as a process: the exit code
/// says which kind of failure it is, and stderr holds one line that says what to fix.
/// Privileges and kernel features are taken away for real, with setpriv and with a private
/// mount namespace, never faked inside the agent.
/// </summary>
[Trait("Category", "Agent")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class FailureModeTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("socktrace-failure");

    public FailureModeTests() =>
        // Traversable by nobody, so a file's own mode decides whether it can be read.
        File.SetUnixFileMode(_dir.FullName, (UnixFileMode)Convert.ToInt32("755", 8));

    [Fact]
    public void AConfigPathThatIsADirectory()
    {
        var (code, line) = Run(["--config", _dir.FullName]);
        Assert.Equal(3, code);
        Assert.Equal($"socktrace: cannot read config file {_dir.FullName}: it is a directory", line);
    }

    [Fact]
    public void AConfigFileThatIsNotJson()
    {
        string config = Write("bad.json", """{"SockTrace": {"AttachMode": "auto" """);
        var (code, line) = Run(["--config", config]);
        Assert.Equal(3, code);
        Assert.StartsWith($"socktrace: config file {config} is not valid JSON: ", line);
    }

    [Fact]
    public void AConfigFileTheAgentMayNotRead()
    {
        Requires.Root();
        string config = Write("secret.json", "{}");
        File.SetUnixFileMode(config, UnixFileMode.None);
        using var copy = ReadableAgentCopy.Of(AgentProcess.AgentDll());
        var (code, line) = Run(["--config", config], Script("nobody", AsNobody), copy.Dll);
        Assert.Equal(3, code);
        Assert.Equal($"socktrace: cannot read config file {config}: Access to the path '{config}' is denied.", line);
    }

    [Fact]
    public void NotRootAndNoCapabilities()
    {
        Requires.Root();
        using var copy = ReadableAgentCopy.Of(AgentProcess.AgentDll());
        var (code, line) = Run([], Script("nobody", AsNobody), copy.Dll);
        Assert.Equal(4, code);
        Assert.Equal("socktrace: not running as root and missing capabilities CAP_BPF, CAP_PERFMON: run as root or grant CAP_BPF and CAP_PERFMON", line);
    }

    [Fact]
    public void AKernelWithoutBtf()
    {
        Requires.Root();
        // An empty /sys/kernel/btf in a mount namespace of the agent's own.
        var (code, line) = Run([], Script("no-btf", InPrivateMounts("mount -t tmpfs none /sys/kernel/btf", "exec \"$@\"")));
        Assert.Equal(7, code);
        Assert.Equal("socktrace: this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): SockTrace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y", line);
    }

    [Fact]
    public void TracefsAbsentAndUnmountable()
    {
        Requires.Root();
        // Both places tracefs can be are empty, and the agent runs with only the
        // capabilities it needs to trace, without CAP_SYS_ADMIN to mount tracefs itself.
        var (code, line) = Run([], Script("no-tracefs", InPrivateMounts(
            "mount -t tmpfs none /sys/kernel/tracing && mount -t tmpfs none /sys/kernel/debug",
            "exec setpriv --inh-caps=-all,+bpf,+perfmon --ambient-caps=-all,+bpf,+perfmon --bounding-set=-all,+bpf,+perfmon \"$@\"")));
        Assert.Equal(8, code);
        Assert.Equal("socktrace: tracefs is not mounted at /sys/kernel/tracing and mounting it failed: EPERM (Operation not permitted); mount it (mount -t tracefs nodev /sys/kernel/tracing) or grant CAP_SYS_ADMIN", line);
    }

    /// <summary>As nobody, with no capabilities; such tests run a ReadableAgentCopy, since the
    /// clone itself may be closed to nobody (under /root).</summary>
    private const string AsNobody = "exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \"$@\"";

    private static string InPrivateMounts(string mounts, string then) =>
        $"exec unshare --mount --propagation private sh -c '{mounts} && {then}' sh \"$@\"";

    /// <summary>The agent's exit code and its stderr, which must be exactly one line.</summary>
    private static (int Code, string Line) Run(string[] args, string? wrapper = null, string? dll = null)
    {
        using var agent = AgentProcess.Start(args, wrapper: wrapper, dll: dll);
        int code = agent.WaitForExit(TimeSpan.FromSeconds(60));
        string stderr = agent.Stderr.Trim();
        Assert.False(stderr.Contains('\n'), $"more than one line on stderr:\n{stderr}");
        return (code, stderr);
    }

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir.FullName, name);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>A wrapper that runs its arguments (dotnet socktrace.dll ...) after <paramref name="body"/>'s setup.</summary>
    private string Script(string name, string body)
    {
        string path = Path.Combine(_dir.FullName, name + ".sh");
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n");
        File.SetUnixFileMode(path, (UnixFileMode)Convert.ToInt32("755", 8));
        return path;
    }

    public void Dispose() => _dir.Delete(recursive: true);
}
