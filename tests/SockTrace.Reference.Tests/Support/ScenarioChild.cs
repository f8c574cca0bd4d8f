using System.Diagnostics;
using System.Globalization;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace SockTrace.Reference.Tests.Support;

/// <summary>What the kernel returned for each step, in the child that ran them.</summary>
internal sealed record KernelRun(uint Pid, IReadOnlyDictionary<int, int> Ports, IReadOnlyDictionary<int, int> Results, IReadOnlyDictionary<int, ulong> StepTimesNs, string Output);

/// <summary>
/// Runs a scenario's syscalls in a small C process. A .NET process cannot be the runner:
/// the runtime opens fds on its own threads at any moment, so no fd number in it can be
/// predicted. The C process's fd table holds only what the script creates.
/// </summary>
internal static class ScenarioChild
{
    /// <summary>The executable's name, which is also its comm and the `comm` label.</summary>
    public const string Comm = "st-scenario";

    private static readonly Lazy<string> Binary = new(Compile);

    public static KernelRun Run(string script, string nicAddress)
    {
        var start = new ProcessStartInfo(Binary.Value, nicAddress)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var child = Process.Start(start)!;
        child.StandardInput.Write(script);
        child.StandardInput.Close();
        var stdout = child.StandardOutput.ReadToEndAsync();
        var stderr = child.StandardError.ReadToEndAsync();
        if (!child.WaitForExit(TimeSpan.FromSeconds(20)))
        {
            child.Kill();
            Assert.Fail($"{Comm} did not finish within 20 s; script:\n{script}");
        }
        string output = stdout.Result;
        if (child.ExitCode != 0 || !output.Contains("end\n", StringComparison.Ordinal))
            Assert.Fail($"{Comm} failed (exit {child.ExitCode}): {stderr.Result}\nscript:\n{script}\noutput:\n{output}");
        uint pid = 0;
        var ports = new Dictionary<int, int>();
        var results = new Dictionary<int, int>();
        var times = new Dictionary<int, ulong>();
        foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] f = line.Split(' ');
            int N(int i) => int.Parse(f[i], CultureInfo.InvariantCulture);
            switch (f[0])
            {
                case "pid": pid = (uint)N(1); break;
                case "port": ports[N(1)] = N(2); break;
                case "r": results[N(1)] = N(2) < 0 ? -N(3) : N(2); break;
                case "t": times[N(1)] = ulong.Parse(f[2], CultureInfo.InvariantCulture); break;
            }
        }
        return new KernelRun(pid, ports, results, times, output);
    }

    /// <summary>The host's first non-loopback IPv4 address: a connection to it is a NIC-path peer.</summary>
    public static string NicAddress()
    {
        var address = NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork);
        if (address is null)
            Assert.Fail("the NIC-path scenarios need a non-loopback IPv4 address on this host, and it has none");
        return address.ToString();
    }

    private static string Compile()
    {
        string source = Path.Combine(AppContext.BaseDirectory, "Workloads", "scenario.c");
        string dir = Directory.CreateTempSubdirectory("socktrace-scenario-").FullName;
        string binary = Path.Combine(dir, Comm);
        var cc = Process.Start(new ProcessStartInfo("cc", ["-O2", "-Wall", "-Werror", "-pthread", "-o", binary, source])
        {
            RedirectStandardError = true,
        }) ?? throw new InvalidOperationException("cannot start cc");
        string errors = cc.StandardError.ReadToEnd();
        cc.WaitForExit();
        if (cc.ExitCode != 0)
            Assert.Fail($"cc failed to build {source}: {errors}");
        return binary;
    }
}
