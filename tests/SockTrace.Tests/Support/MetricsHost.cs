using System.Diagnostics.Metrics;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using SockTrace.Agent.Hosting;
using SockTrace.Agent.Metrics;

namespace SockTrace.Tests.Support;

/// <summary>
/// The agent's /metrics in process: the OpenTelemetry Prometheus exporter with the families
/// the agent writes itself appended (<see cref="MetricsEndpoint"/>), served on a UNIX socket
/// (an inet one would be traced by the very programs under test). Tests read metric values
/// from it as Prometheus reads them, never from a second aggregation of the instruments.
/// </summary>
/// <remarks>
/// An SDK meter provider listens to every meter of the SockTrace name in the process, its
/// own or not: two at once would count each other's records. Tests that build one are in
/// <see cref="MetricsCollection"/>, which runs alone.
/// </remarks>
internal sealed class MetricsHost : IDisposable
{
    private static int _count;
    private readonly WebApplication _app;
    private readonly string _socket;
    private readonly HttpClient _client;

    public MetricsHost()
    {
        _socket = Path.Combine(Path.GetTempPath(), $"socktrace-metrics-{Environment.ProcessId}-{Interlocked.Increment(ref _count)}.sock");
        File.Delete(_socket);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenUnixSocket(_socket));
        builder.Services.AddSingleton(sp => new AcceptMetrics(sp.GetRequiredService<IMeterFactory>()));
        builder.Services.AddSingleton(sp => new DeliveryMetrics(sp.GetRequiredService<IMeterFactory>()));
        builder.Services.AddSingleton(sp => new FdRaceMetrics(sp.GetRequiredService<IMeterFactory>(), new RecentRaces(), Microsoft.Extensions.Logging.Abstractions.NullLogger<FdRaceMetrics>.Instance));
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddSockTraceMeter()
            .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0));
        _app = builder.Build();
        // The provider first, so that it sees the instruments as they are made (AgentHost).
        _app.Services.GetRequiredService<MeterProvider>();
        Meters = _app.Services.GetRequiredService<IMeterFactory>();
        Accepts = _app.Services.GetRequiredService<AcceptMetrics>();
        Races = _app.Services.GetRequiredService<FdRaceMetrics>();
        _app.MapMetrics();
        _app.StartAsync().GetAwaiter().GetResult();
        _client = new HttpClient(new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancel) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(_socket), cancel);
                return new NetworkStream(socket, ownsSocket: true);
            },
        })
        { BaseAddress = new Uri("http://localhost") };
    }

    public IMeterFactory Meters { get; }

    /// <summary>The accept families, which /metrics writes itself.</summary>
    public AcceptMetrics Accepts { get; }

    /// <summary>The fd races, which /metrics writes itself; their recent list is what /races serves.</summary>
    public FdRaceMetrics Races { get; }

    /// <summary>GET /metrics, parsed.</summary>
    public List<Sample> Scrape() =>
        PrometheusText.Parse(_client.GetStringAsync(MetricsEndpoint.Path).GetAwaiter().GetResult());

    public void Dispose()
    {
        _client.Dispose();
        _app.StopAsync().GetAwaiter().GetResult();
        ((IDisposable)_app).Dispose();
        File.Delete(_socket);
    }
}

/// <summary>Tests that serve /metrics in process (<see cref="MetricsHost"/>): one at a time,
/// and after the tests that run in parallel.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MetricsCollection
{
    public const string Name = "metrics";
}
