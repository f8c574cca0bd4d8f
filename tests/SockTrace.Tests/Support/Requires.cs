using SockTrace.Agent.Hosting;

namespace SockTrace.Tests.Support;

/// <summary>Preconditions of kernel tests. They fail, never skip: a kernel test that cannot
/// run must say why (CI runs as root on a kernel with BPF).</summary>
internal static class Requires
{
    public static void Root()
    {
        if (Environment.UserName != "root" && !IsUid0())
            Assert.Fail("this test loads BPF programs and needs root (run the test command with sudo)");
    }

    /// <summary>Root, BTF, and tracefs mounted (mounting it if needed, as the agent does).</summary>
    public static void Bpf()
    {
        Root();
        try
        {
            KernelPreflight.Run();
        }
        catch (StartupException ex)
        {
            Assert.Fail("this test needs BPF support from the kernel: " + ex.Message);
        }
    }

    private static bool IsUid0() => File.ReadLines("/proc/self/status").Any(l => l.StartsWith("Uid:", StringComparison.Ordinal) && l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1] == "0");
}
