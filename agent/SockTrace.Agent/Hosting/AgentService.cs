using SockTrace.Agent.Bpf;
using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;
using SockTrace.Agent.Reference;

namespace SockTrace.Agent.Hosting;

/// <summary>
/// Loads and attaches in StartAsync, so a failure stops start-up with its reason instead of
/// leaving a running process that observes nothing; a failure later stops the host.
/// </summary>
public sealed partial class AgentService(
    AgentOptions options,
    AcceptMetrics acceptMetrics,
    FdRaceMetrics fdRaceMetrics,
    AgentMetrics agentMetrics,
    RxMetrics rxMetrics,
    DeliveryMetrics deliveryMetrics,
    ListenMetrics listenMetrics,
    SeriesLimit seriesLimit,
    KernelProbe kernelProbe,
    IHostApplicationLifetime lifetime,
    ILoggerFactory loggerFactory) : IHostedService
{
    private readonly ILogger _logger = loggerFactory.CreateLogger<AgentService>();
    private IEventSource? _source;
    private volatile bool _faulted;

    /// <summary>True while records flow; /healthz reports it.</summary>
    public bool Healthy => _source is not null && !_faulted;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var pipeline = new RecordPipeline(acceptMetrics, fdRaceMetrics, seriesLimit);
        if (options.Source == AgentOptions.ReferenceSourceName)
            return StartReference(pipeline);
        LibbpfLog.Install(loggerFactory.CreateLogger("SockTrace.Libbpf"));
        var kernel = kernelProbe.Result();
        var source = KernelAttach.Start(pipeline.Decoder, kernel, options.AttachMode, options.Hooks, options.KernelSource, _logger,
            port => pipeline.Join.Ignore((uint)Environment.ProcessId, (ushort)port));
        source.Faulted += OnFaulted;
        pipeline.Observe(source, agentMetrics, listenMetrics, options.RxMetrics ? rxMetrics : null, options.RxMetrics ? deliveryMetrics : null);
        source.Start();
        _source = source;
        // What loading the objects left behind (libbpf's parses of the kernel's BTF) is given back by StartupMemoryRelease.
        LogStarted(options.RingBufferBytes, (int)options.PollInterval.TotalMilliseconds);
        return Task.CompletedTask;
    }

    /// <summary>The model instead of the kernel: nothing is loaded, so no preflight and no privileges.</summary>
    private Task StartReference(RecordPipeline pipeline)
    {
        var source = new ReferenceEventSource(pipeline.Decoder, options.ScenarioFile!, options.DoubleCloseWindow);
        agentMetrics.Observe(source, pipeline.Decoder, pipeline.Join);
        source.Start();
        _source = source;
        LogReference(options.ScenarioFile!, source.Records);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _source?.Dispose();
        LogStopped();
        return Task.CompletedTask;
    }

    private void OnFaulted(Exception ex)
    {
        _faulted = true;
        LogFaulted(ex);
        Environment.ExitCode = ExitCodes.Failure;
        lifetime.StopApplication();
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Observing: ring buffer {RingBytes} bytes, poll interval {PollMs} ms")]
    private partial void LogStarted(uint ringBytes, int pollMs);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Detached all hooks")]
    private partial void LogStopped();

    [LoggerMessage(EventId = 3, Level = LogLevel.Critical, Message = "Record source failed; stopping")]
    private partial void LogFaulted(Exception ex);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Reference model ran scenario {Scenario}: {Records} records, no BPF loaded")]
    private partial void LogReference(string scenario, int records);
}
