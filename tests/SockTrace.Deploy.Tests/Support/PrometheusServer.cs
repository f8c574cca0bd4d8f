using System.Diagnostics;
using System.Text.Json.Nodes;

namespace SockTrace.Deploy.Tests.Support;

/// <summary>
/// A real Prometheus (Debian's package) scraping one agent on loopback every second, with the
/// node label the ServiceMonitor would add. It scrapes nothing else and listens on loopback only.
/// </summary>
internal sealed class PrometheusServer : IDisposable
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly Process _process;
    private readonly string _dir;
    private readonly int _port;

    public PrometheusServer(int agentPort, string node)
    {
        string prometheus = Install("prometheus");
        _dir = Directory.CreateTempSubdirectory("socktrace-prometheus-").FullName;
        string config = Path.Combine(_dir, "prometheus.yml");
        File.WriteAllText(config, $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
            scrape_configs:
              - job_name: socktrace
                static_configs:
                  - targets: ["127.0.0.1:{agentPort}"]
                    labels:
                      node: "{node}"
            """);
        _port = Host.FreePort();
        var info = new ProcessStartInfo(prometheus)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string arg in new[]
        {
            $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(_dir, "data")}",
            $"--web.listen-address=127.0.0.1:{_port}",
        })
            info.ArgumentList.Add(arg);
        _process = Process.Start(info)!;
        // Prometheus logs to stderr; drain both so it never blocks on a full pipe.
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        Host.WaitUntil(() =>
        {
            Assert.False(_process.HasExited, "prometheus exited at start");
            try
            {
                return Http.GetAsync($"http://127.0.0.1:{_port}/-/ready").Result.IsSuccessStatusCode;
            }
            catch (AggregateException)
            {
                return false;
            }
        }, "prometheus to be ready", TimeSpan.FromSeconds(30));
    }

    public string Url => $"http://127.0.0.1:{_port}";

    /// <summary>An instant query; returns the whole answer (status, data.result, error).</summary>
    public JsonNode Query(string promql)
    {
        string url = $"http://127.0.0.1:{_port}/api/v1/query?query={Uri.EscapeDataString(promql)}";
        var response = Http.GetAsync(url).Result;
        return JsonNode.Parse(response.Content.ReadAsStringAsync().Result)!;
    }

    public static JsonArray Result(JsonNode answer) => answer["data"]?["result"]?.AsArray() ?? [];

    /// <summary>The path of a program from Debian's prometheus package, installing it when missing
    /// (--no-install-recommends: no node exporter or other daemons).</summary>
    public static string Install(string program)
    {
        if (Host.Which(program) is { } path)
            return path;
        Host.RequireRoot("installs Debian's prometheus package");
        var env = new Dictionary<string, string> { ["DEBIAN_FRONTEND"] = "noninteractive" };
        // Another apt run may hold the lock for a while; wait for it rather than fail.
        string[] install = ["-o", "DPkg::Lock::Timeout=120", "install", "-y", "-q", "--no-install-recommends", "prometheus"];
        var (code, output) = Host.Run("apt-get", install, environment: env, timeout: TimeSpan.FromMinutes(5));
        if (code != 0)
        {
            Host.Run("apt-get", ["-o", "DPkg::Lock::Timeout=120", "update", "-q"], environment: env, timeout: TimeSpan.FromMinutes(5));
            (code, output) = Host.Run("apt-get", install, environment: env, timeout: TimeSpan.FromMinutes(5));
        }
        Assert.True(code == 0, $"apt-get install prometheus failed ({code}):\n{output}");
        return Host.Which(program) ?? throw new InvalidOperationException($"{program} missing after installing prometheus");
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        _process.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
