using System.Globalization;
using System.Numerics;
using Microsoft.Extensions.Configuration;
using SockTrace.Agent.Bpf;

namespace SockTrace.Agent.Hosting;

/// <summary>The agent's validated settings.</summary>
public sealed record AgentOptions(string AttachMode, uint RingBufferBytes, TimeSpan PollInterval, TimeSpan DoubleCloseWindow, bool RxMetrics = true)
{
    public const string DefaultUrls = "http://0.0.0.0:9464";
    public static readonly string[] AttachModes = ["auto", .. Bpf.AttachModes.Preference.Select(m => m.Name())];

    public KernelSourceOptions KernelSource => new(RingBufferBytes, PollInterval, DoubleCloseWindow);

    public const string KernelSourceName = "kernel";
    public const string ReferenceSourceName = "reference";

    /// <summary>Where records come from: the kernel's BPF programs, or the reference model running <see cref="ScenarioFile"/>.</summary>
    public string Source { get; init; } = KernelSourceName;

    public string? ScenarioFile { get; init; }

    /// <summary>Label sets each metric may have before new ones fold into "other".</summary>
    public int MaxSeriesPerMetric { get; init; } = Metrics.SeriesLimit.DefaultMaxPerMetric;

    public const int DefaultSeriesIdleSeconds = 600;

    /// <summary>How long an accept series may go without a record before it is dropped; zero keeps it for good.</summary>
    public TimeSpan SeriesIdle { get; init; } = TimeSpan.FromSeconds(DefaultSeriesIdleSeconds);

    public const string AttributionOff = "off";
    public const string AttributionKubernetes = "kubernetes";

    /// <summary>off, or kubernetes: namespace, pod and container labels from cgroups and the API server.</summary>
    public string Attribution { get; init; } = AttributionOff;

    /// <summary>Keep the capabilities after attaching instead of dropping them all.</summary>
    public bool KeepCapabilities { get; init; }

    public string? TlsCertFile { get; init; }
    public string? TlsKeyFile { get; init; }
    public string? AuthTokenFile { get; init; }
    public bool AuthKubernetes { get; init; }
    public bool Tls => TlsCertFile is not null;

    /// <summary>The hooks to plan and load: all of them, less rx and delivery when --rx-metrics is off.</summary>
    public IEnumerable<Hook> Hooks => RxMetrics ? Bpf.Hooks.All : Bpf.Hooks.All.Where(h => h != Bpf.Hooks.Rx && h != Bpf.Hooks.Delivery);

    /// <summary>Reads and validates; a bad value is a <see cref="StartupException"/> naming the setting.</summary>
    public static AgentOptions From(IConfiguration config)
    {
        var (source, scenario) = ParseSource(config);
        return ParseKernel(config) with { Source = source, ScenarioFile = scenario };
    }

    private static (string Source, string? Scenario) ParseSource(IConfiguration config)
    {
        string source = (config[AgentSettings.Source.ConfigKey] ?? KernelSourceName).ToLowerInvariant();
        string? scenario = config[AgentSettings.Scenario.ConfigKey];
        if (source is not (KernelSourceName or ReferenceSourceName))
            throw Invalid(AgentSettings.Source, source, $"must be {KernelSourceName} or {ReferenceSourceName}");
        if (source == ReferenceSourceName && string.IsNullOrEmpty(scenario))
            throw Invalid(AgentSettings.Scenario, "", $"{AgentSettings.Source.Flag} {ReferenceSourceName} needs a scenario file");
        if (source == KernelSourceName && scenario is not null)
            throw Invalid(AgentSettings.Scenario, scenario, $"only {AgentSettings.Source.Flag} {ReferenceSourceName} runs a scenario");
        if (scenario is not null && !File.Exists(scenario))
            throw Invalid(AgentSettings.Scenario, scenario, "no such file");
        return (source, scenario);
    }

    private static AgentOptions ParseKernel(IConfiguration config)
    {
        string mode = (config[AgentSettings.AttachMode.ConfigKey] ?? "auto").ToLowerInvariant();
        if (!AttachModes.Contains(mode))
            throw Invalid(AgentSettings.AttachMode, mode, $"must be one of {string.Join(", ", AttachModes)}");

        uint ring = ParseUInt(config, AgentSettings.RingBufferBytes, 4u << 20);
        // The kernel requires a power-of-two multiple of the page size (kernel/bpf/ringbuf.c).
        if (ring < Environment.SystemPageSize || ring > (1u << 30) || !BitOperations.IsPow2(ring))
            throw Invalid(AgentSettings.RingBufferBytes, ring.ToString(CultureInfo.InvariantCulture),
                $"must be a power of two from {Environment.SystemPageSize} to {1u << 30}");

        uint poll = ParseUInt(config, AgentSettings.PollIntervalMs, 100);
        if (poll is < 1 or > 10_000)
            throw Invalid(AgentSettings.PollIntervalMs, poll.ToString(CultureInfo.InvariantCulture), "must be from 1 to 10000");

        uint doubleCloseWindow = ParseUInt(config, AgentSettings.DoubleCloseWindowMs, 1000);
        if (doubleCloseWindow is < 1 or > 600_000)
            throw Invalid(AgentSettings.DoubleCloseWindowMs, doubleCloseWindow.ToString(CultureInfo.InvariantCulture), "must be from 1 to 600000");

        string rx = (config[AgentSettings.RxMetrics.ConfigKey] ?? "on").ToLowerInvariant();
        if (rx is not ("on" or "off"))
            throw Invalid(AgentSettings.RxMetrics, rx, "must be on or off");

        uint maxSeries = ParseUInt(config, AgentSettings.MaxSeriesPerMetric, Metrics.SeriesLimit.DefaultMaxPerMetric);
        if (maxSeries is < 1 or > 1_000_000)
            throw Invalid(AgentSettings.MaxSeriesPerMetric, maxSeries.ToString(CultureInfo.InvariantCulture), "must be from 1 to 1000000");

        uint idle = ParseUInt(config, AgentSettings.SeriesIdleSeconds, DefaultSeriesIdleSeconds);
        if (idle > 30 * 86_400)
            throw Invalid(AgentSettings.SeriesIdleSeconds, idle.ToString(CultureInfo.InvariantCulture), "must be from 0 (never) to 2592000 (30 days)");

        return new AgentOptions(mode, ring, TimeSpan.FromMilliseconds(poll), TimeSpan.FromMilliseconds(doubleCloseWindow), rx == "on")
        {
            MaxSeriesPerMetric = (int)maxSeries,
            SeriesIdle = TimeSpan.FromSeconds(idle),
            Attribution = ParseAttribution(config),
            KeepCapabilities = ParseBool(config, AgentSettings.KeepCapabilities),
            TlsCertFile = NonEmpty(config, AgentSettings.TlsCertFile),
            TlsKeyFile = NonEmpty(config, AgentSettings.TlsKeyFile),
            AuthTokenFile = NonEmpty(config, AgentSettings.AuthTokenFile),
            AuthKubernetes = ParseBool(config, AgentSettings.AuthKubernetes),
        }.CheckTls();
    }

    private AgentOptions CheckTls()
    {
        if ((TlsCertFile is null) != (TlsKeyFile is null))
            throw TlsCertFile is null
                ? Invalid(AgentSettings.TlsCertFile, "", $"{AgentSettings.TlsKeyFile.Flag} needs {AgentSettings.TlsCertFile.Flag}")
                : Invalid(AgentSettings.TlsKeyFile, "", $"{AgentSettings.TlsCertFile.Flag} needs {AgentSettings.TlsKeyFile.Flag}");
        return this;
    }

    private static string? NonEmpty(IConfiguration config, AgentSetting setting)
    {
        string? text = config[setting.ConfigKey];
        return text is null ? null : text.Length > 0 ? text : throw Invalid(setting, text, "must name a file");
    }

    private static string ParseAttribution(IConfiguration config)
    {
        string attribution = (config[AgentSettings.Attribution.ConfigKey] ?? AttributionOff).ToLowerInvariant();
        return attribution is AttributionOff or AttributionKubernetes
            ? attribution
            : throw Invalid(AgentSettings.Attribution, attribution, $"must be {AttributionOff} or {AttributionKubernetes}");
    }

    private static bool ParseBool(IConfiguration config, AgentSetting setting)
    {
        string? text = config[setting.ConfigKey];
        if (text is null)
            return false;
        return bool.TryParse(text, out bool value) ? value : throw Invalid(setting, text, "must be true or false");
    }

    private static uint ParseUInt(IConfiguration config, AgentSetting setting, uint fallback)
    {
        string? text = config[setting.ConfigKey];
        if (text is null)
            return fallback;
        return uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out uint value)
            ? value
            : throw Invalid(setting, text, "must be a whole number");
    }

    private static StartupException Invalid(AgentSetting setting, string value, string rule) =>
        new(ExitCodes.Usage, $"invalid {setting.Flag} ({setting.EnvironmentVariable}, {setting.ConfigKey}) value '{value}': {rule}");
}
