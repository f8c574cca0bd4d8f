using Microsoft.AspNetCore.Builder;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
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
        AddLayers(builder.Configuration, commandLine);
        var options = AgentOptions.From(builder.Configuration);
        var kernelProbe = new KernelProbe();
        if (options.Source == AgentOptions.KernelSourceName)
        {
            StartupMemoryRelease.FixMallocThresholds();
            kernelProbe.Begin(options.Hooks);
        }
        builder.WebHost.UseUrls(Urls(builder.Configuration[AgentSettings.Urls.ConfigKey], options.Tls));

        builder.Logging.ClearProviders();
        // A start-up failure is reported once, as one line, by Program; the host's own
        // "Hosting failed to start" entry would repeat it with a stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        AddConsole(builder.Logging);

        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(kernelProbe);
        TlsCertificate? certificate = null;
        if (options.Tls)
        {
            // The slim builder leaves HTTPS out unless asked; the selector runs per handshake,
            // so a rotated certificate serves the next connection.
            builder.WebHost.UseKestrelHttpsConfiguration();
            var tls = certificate = new TlsCertificate(options.TlsCertFile!, options.TlsKeyFile!);
            builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureHttpsDefaults(https => https.ServerCertificateSelector = (_, _) => tls.Current));
        }
        builder.Services.AddSingleton(sp => new SeriesLimit(sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), sp.GetRequiredService<AgentOptions>().MaxSeriesPerMetric));
        builder.Services.AddSingleton<Attribution.PodIndex>();
        builder.Services.AddSingleton(sp => new Attribution.PodAttributionSlot(Attribution.PodAttributionService.Create(sp.GetRequiredService<AgentOptions>(), sp.GetRequiredService<Attribution.PodIndex>())));
        builder.Services.AddSingleton(sp => new AcceptMetrics(sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), sp.GetRequiredService<SeriesLimit>(),
            sp.GetRequiredService<Attribution.PodAttributionSlot>().Value, sp.GetRequiredService<AgentOptions>().SeriesIdle));
        builder.Services.AddSingleton<RecentRaces>(_ => new RecentRaces());
        builder.Services.AddSingleton(sp => new FdRaceMetrics(sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), sp.GetRequiredService<RecentRaces>(),
            sp.GetRequiredService<ILogger<FdRaceMetrics>>(), sp.GetRequiredService<SeriesLimit>(), sp.GetRequiredService<Attribution.PodAttributionSlot>().Value));
        builder.Services.AddSingleton<AgentMetrics>();
        builder.Services.AddSingleton<RxMetrics>();
        builder.Services.AddSingleton(sp => new DeliveryMetrics(sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), sp.GetRequiredService<AgentOptions>().MaxSeriesPerMetric));
        builder.Services.AddSingleton(sp => new ListenMetrics(sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), sp.GetRequiredService<AgentOptions>().MaxSeriesPerMetric));
        builder.Services.AddSingleton<AgentService>();
        // Before the agent's own service: a missing NODE_NAME or token stops start-up before BPF loads.
        builder.Services.AddHostedService<Attribution.PodAttributionService>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<AgentService>());
        builder.Services.AddHostedService<PrivilegeDropService>();
        // Last: its StartedAsync runs after every other one's.
        builder.Services.AddHostedService<StartupMemoryRelease>();
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("socktrace", serviceVersion: typeof(AgentHost).Assembly.GetName().Version?.ToString(3)))
            .WithMetrics(metrics => metrics
            .AddSockTraceMeter()
            .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0));

        var app = builder.Build();
        if (certificate is not null)
            certificate.Logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger<TlsCertificate>();
        // Instruments exist from the first scrape on, even before any record arrives; the
        // meter provider first, so that it listens to what they record at creation.
        app.Services.GetRequiredService<MeterProvider>();
        app.Services.GetRequiredService<AgentMetrics>();
        app.Services.GetRequiredService<AcceptMetrics>();
        app.Services.GetRequiredService<FdRaceMetrics>();
        app.Services.GetRequiredService<RxMetrics>();
        app.Services.GetRequiredService<DeliveryMetrics>();
        app.Services.GetRequiredService<ListenMetrics>();
        app.UseEndpointAuthorization(options);
        app.MapMetrics();
        app.MapGet("/races", (RecentRaces races) => Results.Json(races.Snapshot(), RaceJson.Default.FdRaceArray));
        app.MapGet("/healthz", (AgentService agent) =>
            agent.Healthy ? Results.Text("ok\n") : Results.Text("not observing\n", statusCode: StatusCodes.Status503ServiceUnavailable));
        return app;
    }

    /// <summary>--urls, or the default in the scheme that TLS (or its absence) calls for; a
    /// scheme that contradicts the TLS flags is a usage error rather than a silent plain port.</summary>
    private static string Urls(string? configured, bool tls)
    {
        if (string.IsNullOrEmpty(configured))
            return tls ? AgentOptions.DefaultUrls.Replace("http://", "https://", StringComparison.Ordinal) : AgentOptions.DefaultUrls;
        foreach (string url in configured.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            bool https = url.StartsWith("https://", StringComparison.OrdinalIgnoreCase);
            if (https != tls)
                throw new StartupException(ExitCodes.Usage, tls
                    ? $"invalid {AgentSettings.Urls.Flag} value '{url}': with {AgentSettings.TlsCertFile.Flag} the metrics are served over https://"
                    : $"invalid {AgentSettings.Urls.Flag} value '{url}': https:// needs {AgentSettings.TlsCertFile.Flag} and {AgentSettings.TlsKeyFile.Flag}");
        }
        return configured;
    }

    /// <summary>The validated settings alone, without a host (for `socktrace check`).</summary>
    public static AgentOptions Options(AgentCommandLine commandLine)
    {
        var configuration = new ConfigurationManager();
        configuration.SetBasePath(AppContext.BaseDirectory).AddJsonFile("appsettings.json", optional: true);
        AddLayers(configuration, commandLine);
        return AgentOptions.From(configuration);
    }

    /// <summary>Config file, then environment, then flags, each overriding the one before.</summary>
    private static void AddLayers(ConfigurationManager configuration, AgentCommandLine commandLine)
    {
        var environment = AgentCommandLine.FromEnvironment(out string? envConfigFile);
        if ((commandLine.ConfigFile ?? envConfigFile) is { } configFile)
            AddConfigFile(configuration, configFile);
        configuration.AddInMemoryCollection(environment);
        configuration.AddInMemoryCollection(commandLine.Settings);
    }

    private static void AddConfigFile(ConfigurationManager configuration, string path)
    {
        // Opening a directory fails with "Access to the path is denied", which sends the
        // reader to check permissions instead of the path.
        if (Directory.Exists(path))
            throw new StartupException(ExitCodes.ConfigFile, $"cannot read config file {path}: it is a directory");
        try
        {
            using var stream = File.OpenRead(path);
            configuration.AddJsonStream(new MemoryStream(ReadAll(stream)));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StartupException(ExitCodes.ConfigFile, $"cannot read config file {path}: {ex.Message}");
        }
        catch (Exception ex) when (ex is FormatException or System.Text.Json.JsonException or InvalidDataException)
        {
            throw new StartupException(ExitCodes.ConfigFile, $"config file {path} is not valid JSON: {ex.Message}");
        }
    }

    private static byte[] ReadAll(Stream stream)
    {
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>The agent's console log. It writes from a queue of its own; full, it would block
    /// the thread that logs, and the ring buffer reader must never wait on a log line: it drops
    /// instead (RaceLogTests).</summary>
    internal static void AddConsole(ILoggingBuilder logging)
    {
        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        });
        logging.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(
            o => o.QueueFullMode = Microsoft.Extensions.Logging.Console.ConsoleLoggerQueueFullMode.DropWrite);
    }
}

/// <summary>Source-generated JSON for /races (no reflection at run time).</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(FdRace[]))]
[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower)]
internal sealed partial class RaceJson : System.Text.Json.Serialization.JsonSerializerContext;
