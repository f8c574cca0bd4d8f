using SockTrace.Agent.Hosting;

namespace SockTrace.Tests.Hosting;

public sealed class KernelPreflightTests
{
    private const ulong SysAdmin = 1UL << 21, Perfmon = 1UL << 38, Bpf = 1UL << 39;

    [Theory]
    [InlineData(Bpf | Perfmon)]
    [InlineData(SysAdmin)]
    public void EnoughCapabilitiesPass(ulong effective) => KernelPreflight.CheckCapabilities(effective);

    [Theory]
    [InlineData(Bpf, "CAP_PERFMON", ExitCodes.MissingCapPerfmon)]
    [InlineData(Perfmon, "CAP_BPF", ExitCodes.MissingCapBpf)]
    [InlineData(0UL, "CAP_BPF, CAP_PERFMON", ExitCodes.NoPrivilege)]
    public void MissingCapabilitiesAreNamed(ulong effective, string named, int exitCode)
    {
        var ex = Assert.Throws<StartupException>(() => KernelPreflight.CheckCapabilities(effective));
        Assert.Equal(exitCode, ex.ExitCode);
        Assert.Contains("missing capabilit", ex.Message);
        Assert.Contains(named + ":", ex.Message);
    }
}
