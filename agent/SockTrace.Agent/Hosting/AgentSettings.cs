namespace SockTrace.Agent.Hosting;

/// <summary>Every setting the agent takes, and the three names it goes by.</summary>
public sealed record AgentSetting(string Flag, string EnvironmentVariable, string ConfigKey, string Help)
{
    /// <summary>A switch takes no value on the command line ("true"); `--flag=false` still turns it off.</summary>
    public bool IsSwitch { get; init; }
}

public static class AgentSettings
{
    public static readonly AgentSetting Urls = new("--urls", "SOCKTRACE_URLS", "urls",
        $"where /metrics and /healthz are served (default {AgentOptions.DefaultUrls})");
    public static readonly AgentSetting AttachMode = new("--attach-mode", "SOCKTRACE_ATTACH_MODE", "SockTrace:AttachMode",
        "auto | fentry | kprobe | tracepoint: how hooks attach; auto picks per hook the first the kernel supports (default auto)");
    public static readonly AgentSetting RingBufferBytes = new("--ring-buffer-bytes", "SOCKTRACE_RING_BUFFER_BYTES", "SockTrace:RingBufferBytes",
        "size of the kernel-to-agent ring buffer, a power of two (default 4194304)");
    public static readonly AgentSetting PollIntervalMs = new("--poll-interval-ms", "SOCKTRACE_POLL_INTERVAL_MS", "SockTrace:PollIntervalMs",
        "longest time records wait in the ring before the agent reads them (default 100)");
    public static readonly AgentSetting DoubleCloseWindowMs = new("--double-close-window-ms", "SOCKTRACE_DOUBLE_CLOSE_WINDOW_MS", "SockTrace:DoubleCloseWindowMs",
        "a close() failing with EBADF this soon after another thread of the process closed the same fd is a double_close race (default 1000)");
    public static readonly AgentSetting RxMetrics = new("--rx-metrics", "SOCKTRACE_RX_METRICS", "SockTrace:RxMetrics",
        "on | off: count received packets and bytes per device (a hook on every packet); off does not load it (default on)");
    public static readonly AgentSetting MaxSeriesPerMetric = new("--max-series-per-metric", "SOCKTRACE_MAX_SERIES_PER_METRIC", "SockTrace:MaxSeriesPerMetric",
        "label sets (port, comm) each metric may have; past it new ones are counted under port and comm \"other\" (default 2000)");
    public static readonly AgentSetting SeriesIdleSeconds = new("--series-idle-seconds", "SOCKTRACE_SERIES_IDLE_SECONDS", "SockTrace:SeriesIdleSeconds",
        "an accept series (a listener's port and process) with no accept for this long leaves /metrics; 0 keeps it for good (default 600)");
    public static readonly AgentSetting Attribution = new("--attribution", "SOCKTRACE_ATTRIBUTION", "SockTrace:Attribution",
        "off | kubernetes: label accepts and fd races with the namespace, pod and container of the process, from its cgroup and the pods on $NODE_NAME in the Kubernetes API (default off)");
    public static readonly AgentSetting Source = new("--source", "SOCKTRACE_SOURCE", "SockTrace:Source",
        "kernel | reference: records from the BPF programs, or from the in-process model running --scenario (no privileges needed) (default kernel)");
    public static readonly AgentSetting Scenario = new("--scenario", "SOCKTRACE_SCENARIO", "SockTrace:Scenario",
        "with --source reference: the scenario file (JSON) the model runs");
    public static readonly AgentSetting KeepCapabilities = new("--keep-capabilities", "SOCKTRACE_KEEP_CAPABILITIES", "SockTrace:KeepCapabilities",
        "keep the capabilities after attaching (by default every one is dropped in every thread once the programs are attached)") { IsSwitch = true };
    public static readonly AgentSetting TlsCertFile = new("--tls-cert-file", "SOCKTRACE_TLS_CERT_FILE", "SockTrace:TlsCertFile",
        "serve over HTTPS with this PEM certificate (chain), loaded again when the file changes; needs --tls-key-file");
    public static readonly AgentSetting TlsKeyFile = new("--tls-key-file", "SOCKTRACE_TLS_KEY_FILE", "SockTrace:TlsKeyFile",
        "the PEM private key of --tls-cert-file");
    public static readonly AgentSetting AuthTokenFile = new("--auth-token-file", "SOCKTRACE_AUTH_TOKEN_FILE", "SockTrace:AuthTokenFile",
        "/metrics and /races answer only requests with this bearer token (Authorization: Bearer TOKEN); /healthz stays open");
    public static readonly AgentSetting AuthKubernetes = new("--auth-kubernetes", "SOCKTRACE_AUTH_KUBERNETES", "SockTrace:AuthKubernetes",
        "/metrics and /races answer a bearer token the API server authenticates (TokenReview) and allows to get that URL (SubjectAccessReview), as kube-rbac-proxy does") { IsSwitch = true };
    public static readonly AgentSetting ConfigFile = new("--config", "SOCKTRACE_CONFIG", "",
        "a JSON settings file, e.g. {\"SockTrace\": {\"AttachMode\": \"auto\"}}");

    public static readonly IReadOnlyList<AgentSetting> All = [Urls, AttachMode, RingBufferBytes, PollIntervalMs, DoubleCloseWindowMs, RxMetrics, MaxSeriesPerMetric, SeriesIdleSeconds, Attribution, Source, Scenario, KeepCapabilities, TlsCertFile, TlsKeyFile, AuthTokenFile, AuthKubernetes, ConfigFile];
}
