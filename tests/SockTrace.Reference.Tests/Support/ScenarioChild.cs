using System.Diagnostics;
using System.Globalization;

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
        // In a network namespace of its own, so that the "nic" peer address is one this
        // test made (on a device there) and no scenario traffic touches the host's. A child
        // of the shell, not exec'd in its place: `ip` and `sh` close fds of their own in the
        // pid they exec in, and a process that starts fresh has no closes its accepts could
        // find (the agent pairs an accept with the last close of its number in the process).
        var start = new ProcessStartInfo("ip", ["netns", "exec", Namespace.Value, "sh", "-c", "\"$0\" \"$@\"; exit $?", Binary.Value, nicAddress])
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
            child.Kill(entireProcessTree: true);
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

    /// <summary>The non-loopback address of the runner's namespace, on a device there: a
    /// connection to it is a peer on this host that is not loopback.</summary>
    public static string NicAddress()
    {
        _ = Namespace.Value;
        return DummyAddress;
    }

    private const string DummyAddress = "10.231.9.1";

    private static readonly Lazy<string> Namespace = new(CreateNamespace);

    private static string CreateNamespace()
    {
        string name = $"st-scenario-{Environment.ProcessId}";
        foreach (string command in new[]
        {
            $"netns add {name}",
            $"-n {name} link set lo up",
            // A veth pair with both ends inside: kernels without the dummy driver have veth.
            $"-n {name} link add st0 type veth peer name st1",
            $"-n {name} addr add {DummyAddress}/24 dev st0",
            $"-n {name} link set st0 up",
            $"-n {name} link set st1 up",
        })
        {
            using var ip = Process.Start(new ProcessStartInfo("ip", command) { RedirectStandardError = true })!;
            string error = ip.StandardError.ReadToEnd();
            ip.WaitForExit();
            if (ip.ExitCode != 0)
                Assert.Fail($"ip {command} failed (the kernel scenarios need root): {error}");
        }
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Process.Start("ip", $"netns del {name}")?.WaitForExit();
        return name;
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
