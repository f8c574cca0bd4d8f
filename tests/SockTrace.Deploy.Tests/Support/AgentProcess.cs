using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace SockTrace.Deploy.Tests.Support;

/// <summary>
/// The built agent as its own process, holding only the given capabilities the way a container
/// runtime grants them to uid 0: bounding, inheritable and ambient sets cut down to them.
/// </summary>
internal sealed partial class AgentProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    private AgentProcess(Process process, int port)
    {
        _process = process;
        Port = port;
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int Port { get; }

    public int Pid => _process.Id;

    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    /// <param name="capabilities">Kubernetes capability names, e.g. BPF, PERFMON.</param>
    /// <param name="args">Arguments before --urls, e.g. a container's args (check).</param>
    public static AgentProcess Start(IReadOnlyCollection<string> capabilities, bool noNewPrivileges, IEnumerable<string>? args = null)
    {
        int port = Host.FreePort();
        string caps = string.Concat(capabilities.Select(c => ",+" + c.ToLowerInvariant()));
        var info = new ProcessStartInfo(Host.Which("setpriv") ?? "setpriv")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        info.ArgumentList.Add($"--inh-caps=-all{caps}");
        info.ArgumentList.Add($"--ambient-caps=-all{caps}");
        info.ArgumentList.Add($"--bounding-set=-all{caps}");
        if (noNewPrivileges)
            info.ArgumentList.Add("--no-new-privs");
        info.ArgumentList.Add("--");
        info.ArgumentList.Add(Host.Which("dotnet") ?? "dotnet");
        info.ArgumentList.Add(Repo.AgentDll);
        foreach (string arg in args ?? [])
            info.ArgumentList.Add(arg);
        info.ArgumentList.Add("--urls");
        info.ArgumentList.Add($"http://127.0.0.1:{port}");
        return new AgentProcess(Process.Start(info)!, port);
    }

    /// <summary>Waits for /healthz to answer 200; fails with the agent's output if it exits first.</summary>
    public void WaitHealthy()
    {
        Host.WaitUntil(() =>
        {
            Assert.False(_process.HasExited, $"the agent exited with {(_process.HasExited ? _process.ExitCode : 0)}:\n{Output}");
            try
            {
                return Http.GetAsync(Url("/healthz")).Result.IsSuccessStatusCode;
            }
            catch (AggregateException)
            {
                return false;
            }
        }, "the agent's /healthz", TimeSpan.FromSeconds(30));
    }

    /// <summary>Waits for the agent to exit by itself; returns its exit code.</summary>
    public int WaitForExit(TimeSpan timeout)
    {
        Assert.True(_process.WaitForExit(timeout), $"the agent did not exit within {timeout.TotalSeconds:0} s:\n{Output}");
        _process.WaitForExit();
        return _process.ExitCode;
    }

    public string Scrape() => Http.GetStringAsync(Url("/metrics")).Result;

    /// <summary>Sum of the samples of <paramref name="metric"/> whose labels include all of <paramref name="labels"/>.</summary>
    public static double Sum(string exposition, string metric, params string[] labels) =>
        exposition.Split('\n')
            .Where(l => l.StartsWith(metric + "{", StringComparison.Ordinal) && labels.All(l.Contains))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));

    private string Url(string path) => $"http://127.0.0.1:{Port}{path}";

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_output)
            _output.AppendLine(line);
    }

    /// <summary>SIGTERM first, so the agent detaches its hooks and exits as it would in a pod.</summary>
    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _ = Kill(_process.Id, Sigterm);
            if (!_process.WaitForExit(TimeSpan.FromSeconds(10)))
                _process.Kill(entireProcessTree: true);
        }
        _process.WaitForExit();
        _process.Dispose();
    }

    private const int Sigterm = 15;

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);
}
