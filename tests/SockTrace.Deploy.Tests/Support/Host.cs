using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace SockTrace.Deploy.Tests.Support;

/// <summary>This machine: privileges, free ports, commands that run to completion.</summary>
internal static class Host
{
    /// <summary>Fails, never skips: CI runs as root, and a test that cannot run must say why.</summary>
    public static void RequireRoot(string why)
    {
        bool root = File.ReadLines("/proc/self/status")
            .Any(l => l.StartsWith("Uid:", StringComparison.Ordinal) && l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[2] == "0");
        if (!root)
            Assert.Fail($"this test needs root ({why}); run it as root");
    }

    /// <summary>libbpf resolves tracepoint ids through tracefs; an agent holding only CAP_BPF and
    /// CAP_PERFMON cannot mount it, exactly as in the DaemonSet, so the test mounts it as the
    /// node would.</summary>
    public static void EnsureTracefs()
    {
        if (Directory.Exists("/sys/kernel/tracing/events"))
            return;
        var (code, output) = Run("mount", ["-t", "tracefs", "nodev", "/sys/kernel/tracing"]);
        Assert.True(code == 0, $"mounting tracefs failed ({code}): {output}");
    }

    public static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    public static string? Which(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin")
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Append("/usr/sbin").Append("/usr/bin")
            .Select(dir => System.IO.Path.Combine(dir, program))
            .FirstOrDefault(File.Exists);

    /// <summary>Runs a command to completion; returns its exit code and stdout+stderr.</summary>
    public static (int Code, string Output) Run(string program, IEnumerable<string> args, string? stdin = null,
        IDictionary<string, string>? environment = null, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardInput = stdin is not null,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string arg in args)
            info.ArgumentList.Add(arg);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
            info.Environment[name] = value;
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            process.StandardInput.Write(stdin);
            process.StandardInput.Close();
        }
        if (!process.WaitForExit(timeout ?? TimeSpan.FromMinutes(1)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{program} {string.Join(' ', args)} did not finish in time");
        }
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>Polls until <paramref name="done"/> holds or the time is up.</summary>
    public static void WaitUntil(Func<bool> done, string what, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!done())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out after {timeout.TotalSeconds:0} s waiting for {what}");
            Thread.Sleep(100);
        }
    }
}
