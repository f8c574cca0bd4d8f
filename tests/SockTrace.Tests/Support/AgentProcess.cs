using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SockTrace.Tests.Support;

/// <summary>The two builds of the agent: socktrace.dll on the .NET runtime (scripts/build.sh),
/// and the native executable that is shipped (scripts/publish.sh).</summary>
public enum AgentBuild
{
    Managed,
    Native,
}

/// <summary>The built agent run as its own process, as users run it.</summary>
internal sealed class AgentProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };

    private AgentProcess(Process process, int port)
    {
        _process = process;
        Port = port;
        _process.OutputDataReceived += (_, e) => { lock (_stdout) _stdout.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { lock (_stderr) _stderr.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public int Port { get; }
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;
    public string Stdout { get { lock (_stdout) return _stdout.ToString(); } }
    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

    public static string AgentDll()
    {
        // Same configuration as the tests were built in (bin/<Configuration>/net10.0).
        string configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/')).Parent!.Name;
        string dll = Path.Combine(Events.RecordLayoutTests.RepoRoot(), "agent", "SockTrace.Agent", "bin", configuration, "net10.0", "socktrace.dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException("build the agent first (scripts/build.sh)", dll);
    }

    /// <summary>The native agent scripts/publish.sh made (its default output, out/).</summary>
    public static string NativeAgent()
    {
        string exe = Path.Combine(Events.RecordLayoutTests.RepoRoot(), "out", "socktrace");
        return File.Exists(exe) ? exe : throw new FileNotFoundException("publish the native agent first (scripts/publish.sh; scripts/test.sh does)", exe);
    }

    /// <summary>Starts the agent on a free loopback port with extra arguments, without waiting;
    /// <paramref name="dll"/> runs another copy of the build (ReadableAgentCopy).</summary>
    public static AgentProcess Start(IEnumerable<string> args, IDictionary<string, string>? environment = null, string? wrapper = null, string scheme = "http", string? dll = null,
        AgentBuild build = AgentBuild.Managed)
    {
        int port = FreePort();
        string program = build == AgentBuild.Native ? NativeAgent() : "dotnet";
        var psi = new ProcessStartInfo(wrapper ?? program) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (wrapper is not null)
            psi.ArgumentList.Add(program);
        if (build == AgentBuild.Managed)
            psi.ArgumentList.Add(dll ?? AgentDll());
        psi.ArgumentList.Add("--urls");
        psi.ArgumentList.Add($"{scheme}://127.0.0.1:{port}");
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
            psi.Environment[k] = v;
        return new AgentProcess(Process.Start(psi)!, port);
    }

    /// <summary>Starts the agent and waits until /healthz says it is observing.</summary>
    public static AgentProcess StartObserving(params string[] args) => StartObserving(AgentBuild.Managed, args);

    public static AgentProcess StartObserving(AgentBuild build, params string[] args)
    {
        var agent = Start(args, build: build);
        Eventually.True(() => agent.Healthy(), "the agent's /healthz", TimeSpan.FromMinutes(5));
        return agent;
    }

    /// <summary>Whether the agent's log has <paramref name="text"/>; fails at once, with its
    /// output, once the agent has exited without it.</summary>
    public bool Logged(string text)
    {
        if (Stdout.Contains(text, StringComparison.Ordinal))
            return true;
        if (_process.HasExited)
        {
            _process.WaitForExit();
            if (!Stdout.Contains(text, StringComparison.Ordinal))
                Assert.Fail($"agent exited with {_process.ExitCode} before logging \"{text}\": {Stderr}\n{Stdout}");
        }
        return Stdout.Contains(text, StringComparison.Ordinal);
    }

    public bool Healthy()
    {
        if (_process.HasExited)
            Assert.Fail($"agent exited with {_process.ExitCode}: {Stderr}\n{Stdout}");
        try
        {
            return _http.GetAsync($"http://127.0.0.1:{Port}/healthz").GetAwaiter().GetResult().StatusCode == HttpStatusCode.OK;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    public List<Sample> Scrape() => PrometheusText.Parse(ScrapeText());

    public string ScrapeText() => Get("/metrics");

    public string Get(string path) => _http.GetStringAsync($"http://127.0.0.1:{Port}{path}").GetAwaiter().GetResult();

    public int WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
            Assert.Fail($"agent did not exit within {timeout}");
        _process.WaitForExit();
        return _process.ExitCode;
    }

    public void Signal(int signal) => Assert.Equal(0, Kill(_process.Id, signal));

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);

    public static int FreePort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit();
        }
        _process.Dispose();
        _http.Dispose();
    }
}
