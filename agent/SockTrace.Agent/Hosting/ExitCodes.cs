namespace SockTrace.Agent.Hosting;

/// <summary>
/// Process exit codes, one per case an operator fixes differently, so init containers,
/// systemd and scripts can tell them apart without parsing the message. README.md lists them.
/// </summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    /// <summary>An unknown flag, or a bad value from a flag, the environment or the config file.</summary>
    public const int Usage = 2;
    /// <summary>The config file cannot be read or is not JSON.</summary>
    public const int ConfigFile = 3;
    /// <summary>Neither CAP_BPF nor CAP_PERFMON (nor CAP_SYS_ADMIN): typically not running as root.</summary>
    public const int NoPrivilege = 4;
    public const int MissingCapBpf = 5;
    public const int MissingCapPerfmon = 6;
    /// <summary>No /sys/kernel/btf/vmlinux.</summary>
    public const int NoBtf = 7;
    /// <summary>tracefs is not mounted and cannot be mounted.</summary>
    public const int NoTracefs = 8;
    /// <summary>A hook the agent needs, or the attach mode forced for it, is not on this kernel;
    /// or a host facility an option needs (the cgroup v2 hierarchy) is missing.</summary>
    public const int KernelUnsupported = 9;
    /// <summary>A BPF program failed to load or attach.</summary>
    public const int BpfFailure = 10;
    /// <summary>The metrics address is in use.</summary>
    public const int Endpoint = 11;
    /// <summary>`socktrace check` with --attribution kubernetes: listing this node's pods failed.</summary>
    public const int KubernetesApi = 12;
    /// <summary>The capabilities could not be dropped after attaching (--keep-capabilities skips the drop).</summary>
    public const int Capabilities = 13;
    /// <summary>A TLS certificate or key, a token file, or the Kubernetes credentials for --auth-kubernetes,
    /// is missing, unreadable or invalid.</summary>
    public const int SecurityFile = 14;
    /// <summary>The kernel charges BPF memory to RLIMIT_MEMLOCK (before 5.11) and the limit cannot be raised.</summary>
    public const int Memlock = 15;
}

/// <summary>A start-up failure with a one-line reason and the exit code to leave with.</summary>
public sealed class StartupException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
