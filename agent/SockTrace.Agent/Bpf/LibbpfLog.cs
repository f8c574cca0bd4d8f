using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Extensions.Logging;

namespace SockTrace.Agent.Bpf;

/// <summary>
/// Routes libbpf's printf-style log into ILogger, and lets one call capture what libbpf
/// said while it ran (the verifier log arrives this way), so a failure can carry it.
/// libbpf's print hook is process-wide; the last installed logger wins.
/// </summary>
internal static unsafe class LibbpfLog
{
    private static ILogger? s_logger;

    [ThreadStatic]
    private static StringBuilder? t_capture;

    [ThreadStatic]
    private static bool t_probing;

    public static void Install(ILogger logger)
    {
        s_logger = logger;
        Route();
    }

    /// <summary>Takes libbpf's log from its default (stderr) before a logger exists: until
    /// <see cref="Install"/>, a line goes only to a <see cref="Capture"/> running on its thread
    /// (early, the feature probe's loads, whose lines are debug level).</summary>
    public static void Route() => Interop.Libbpf.libbpf_set_print(&Print);

    /// <summary>Runs <paramref name="call"/> and returns what libbpf logged on this thread meanwhile.</summary>
    public static T Capture<T>(Func<T> call, out string log)
    {
        var previous = t_capture;
        t_capture = new StringBuilder();
        try
        {
            return call();
        }
        finally
        {
            log = t_capture.ToString();
            t_capture = previous;
        }
    }

    /// <summary>Runs a feature probe: failure is an expected answer there, so libbpf's
    /// warnings are logged at debug level only.</summary>
    public static T Probing<T>(Func<T> probe)
    {
        bool previous = t_probing;
        t_probing = true;
        try
        {
            return probe();
        }
        finally
        {
            t_probing = previous;
        }
    }

    [UnmanagedCallersOnly]
    private static int Print(int level, byte* format, nint args)
    {
        // enum libbpf_print_level: LIBBPF_WARN = 0, LIBBPF_INFO = 1, LIBBPF_DEBUG = 2.
        const int bufferSize = 4096;
        byte* buffer = stackalloc byte[bufferSize];
        int n = Interop.Libc.vsnprintf(buffer, bufferSize, format, args);
        if (n <= 0)
            return 0;
        string message = Encoding.UTF8.GetString(buffer, Math.Min(n, bufferSize - 1)).TrimEnd('\n');
        t_capture?.AppendLine(message);
        var logLevel = level switch { 0 when !t_probing => LogLevel.Warning, 0 or 1 => LogLevel.Debug, _ => LogLevel.Trace };
        if (s_logger is { } logger && logger.IsEnabled(logLevel))
            logger.Log(logLevel, new EventId(100, "Libbpf"), "libbpf: {Message}", message);
        return 0;
    }
}
