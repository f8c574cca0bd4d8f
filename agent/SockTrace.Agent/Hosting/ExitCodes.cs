namespace SockTrace.Agent.Hosting;

/// <summary>Process exit codes, one per kind of failure, so scripts and init containers can tell them apart.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 2;
    public const int Permission = 3;
    public const int KernelUnsupported = 4;
    public const int BpfFailure = 5;
    public const int Endpoint = 6;
}

/// <summary>A start-up failure with a one-line reason and the exit code to leave with.</summary>
public sealed class StartupException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
