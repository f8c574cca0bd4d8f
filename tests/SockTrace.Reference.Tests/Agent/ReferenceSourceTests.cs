using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using SockTrace.Agent.Events;
using SockTrace.Agent.Hosting;
using SockTrace.Agent.Reference;
using SockTrace.Reference.Tests.Support;
using SockTrace.Tests.Support;

namespace SockTrace.Reference.Tests.Agent;

/// <summary>`socktrace --source reference --scenario FILE`: the agent on the model.</summary>
public sealed class ReferenceSourceTests
{
    private static string ScenarioFile(string name) => Path.Combine(Scenarios.Directory, name + ".json");

    private static AgentOptions Options(params (string Key, string? Value)[] settings) =>
        AgentOptions.From(new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build());

    [Fact]
    public void TheSourceIsTheKernelUnlessSaidOtherwise()
    {
        Assert.Equal("kernel", Options().Source);
        var reference = Options(("SockTrace:Source", "Reference"), ("SockTrace:Scenario", ScenarioFile("dup2-busy")));
        Assert.Equal("reference", reference.Source);
        Assert.Equal(ScenarioFile("dup2-busy"), reference.ScenarioFile);
    }

    [Theory]
    [InlineData("model", null, "--source")]
    [InlineData("reference", null, "needs a scenario file")]
    [InlineData("kernel", "x.json", "only --source reference runs a scenario")]
    [InlineData("reference", "/nonexistent/x.json", "no such file")]
    public void ABadSourceOrScenarioIsAUsageError(string source, string? scenario, string message)
    {
        var ex = Assert.Throws<StartupException>(() => Options(("SockTrace:Source", source), ("SockTrace:Scenario", scenario)));
        Assert.Equal(ExitCodes.Usage, ex.ExitCode);
        Assert.Contains(message, ex.Message);
    }

    [Fact]
    public void AScenarioTheModelRejectsIsAUsageErrorNamingTheFile()
    {
        string file = Path.Combine(Path.GetTempPath(), $"socktrace-bad-{Environment.ProcessId}.json");
        File.WriteAllText(file, """{"steps": [{"op": "accept", "on": "nowhere"}]}""");
        try
        {
            var ex = Assert.Throws<StartupException>(() => new ReferenceEventSource(new Aggregation().Decoder, file, TimeSpan.FromMilliseconds(1)));
            Assert.Equal(ExitCodes.Usage, ex.ExitCode);
            Assert.Contains(file, ex.Message);
            Assert.Contains("names no fd", ex.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void TheSourceFeedsTheScenariosRecordsToTheDecoder()
    {
        using var aggregation = new Aggregation();
        using var source = new ReferenceEventSource(aggregation.Decoder, ScenarioFile("dup3-busy"), TimeSpan.FromMilliseconds(1));
        source.Start();

        Assert.Equal(2, aggregation.Decoder.Decoded(RecordTypes.Accept));
        Assert.Equal(2, aggregation.Decoder.Decoded(RecordTypes.FdRace));
        Assert.Equal(0UL, source.RecordsDropped);
        Assert.Equal(new ProbeInfo("reference", "model"), Assert.Single(source.Probes));
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task TheAgentServesTheModelsMetricsWithoutPrivileges()
    {
        int port = FreePort();
        string dll = Path.Combine(RepoRoot(), "agent", "SockTrace.Agent", "bin",
            new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/')).Parent!.Name, "net10.0", "socktrace.dll");
        // As root, drop to nobody: the reference source must need no privilege at all. The
        // clone may be closed to nobody (under /root), so nobody runs a copy of the build.
        bool asNobody = Environment.UserName == "root";
        using var copy = asNobody ? ReadableAgentCopy.Of(dll) : null;
        string scenario = copy?.Add(ScenarioFile("dup2-busy")) ?? ScenarioFile("dup2-busy");
        string[] agent = ["dotnet", copy?.Dll ?? dll, "--source", "reference", "--scenario", scenario, "--urls", $"http://127.0.0.1:{port}"];
        string[] command = asNobody
            ? ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", "HOME=/tmp", .. agent]
            : agent;
        var start = new ProcessStartInfo(command[0], command[1..]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            string metrics = "";
            for (var deadline = DateTime.UtcNow.AddSeconds(60); DateTime.UtcNow < deadline && !process.HasExited;)
            {
                try
                {
                    metrics = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
                    break;
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    await Task.Delay(200);
                }
            }
            if (process.HasExited)
                Assert.Fail($"the agent exited ({process.ExitCode}): {await stderr}");
            Assert.Matches("(?m)^socktrace_fd_races_total{.*comm=\"st-scenario\",kind=\"dup2_busy\"} 1$", metrics);
            Assert.Matches("(?m)^socktrace_accepts_total{.*comm=\"st-scenario\",peer=\"loopback\",port=\"18080\"} 1$", metrics);
            Assert.Matches("(?m)^socktrace_probe_info{.*hook=\"reference\",mode=\"model\"} 1$", metrics);
            Assert.Equal("ok\n", await http.GetStringAsync($"http://127.0.0.1:{port}/healthz"));
        }
        finally
        {
            if (!process.HasExited)
                process.Kill();
            await process.WaitForExitAsync();
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "SockTrace.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new DirectoryNotFoundException("SockTrace.sln above " + AppContext.BaseDirectory);
    }
}
