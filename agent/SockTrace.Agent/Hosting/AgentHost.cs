using Microsoft.AspNetCore.Builder;
using OpenTelemetry.Metrics;
using SockTrace.Agent.Metrics;

namespace SockTrace.Agent.Hosting;

/// <summary>Builds the web host: configuration layers, metrics pipeline, endpoints.</summary>
public static class AgentHost
{
    public static WebApplication Build(AgentCommandLine commandLine)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = [],
            ContentRootPath = AppContext.BaseDirectory,
        });

        var environment = AgentCommandLine.FromEnvironment(out string? envConfigFile);
        if ((commandLine.ConfigFile ?? envConfigFile) is { } configFile)
            AddConfigFile(builder.Configuration, configFile);
        builder.Configuration.AddInMemoryCollection(environment);
        builder.Configuration.AddInMemoryCollection(commandLine.Settings);
        if (string.IsNullOrEmpty(builder.Configuration[AgentSettings.Urls.ConfigKey]))
            builder.WebHost.UseUrls(AgentOptions.DefaultUrls);
        else
            builder.WebHost.UseUrls(builder.Configuration[AgentSettings.Urls.ConfigKey]!);

        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        });

        builder.Services.AddSingleton(AgentOptions.From(builder.Configuration));
        builder.Services.AddSingleton<AcceptMetrics>();
        builder.Services.AddSingleton<AgentMetrics>();
        builder.Services.AddSingleton<AgentService>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<AgentService>());
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(SockTraceMeter.Name)
            .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0));

        var app = builder.Build();
        // Instruments exist from the first scrape on, even before any record arrives.
        app.Services.GetRequiredService<AgentMetrics>();
        app.Services.GetRequiredService<AcceptMetrics>();
        app.MapPrometheusScrapingEndpoint();
        app.MapGet("/healthz", (AgentService agent) =>
            agent.Healthy ? Results.Text("ok\n") : Results.Text("not observing\n", statusCode: StatusCodes.Status503ServiceUnavailable));
        return app;
    }

    private static void AddConfigFile(ConfigurationManager configuration, string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            configuration.AddJsonStream(new MemoryStream(ReadAll(stream)));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StartupException(ExitCodes.Usage, $"cannot read config file {path}: {ex.Message}");
        }
        catch (Exception ex) when (ex is FormatException or System.Text.Json.JsonException or InvalidDataException)
        {
            throw new StartupException(ExitCodes.Usage, $"config file {path} is not valid JSON: {ex.Message}");
        }
    }

    private static byte[] ReadAll(Stream stream)
    {
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
