using System.IO.Compression;
using System.Text;
using Microsoft.Extensions.Primitives;
using SockTrace.Agent.Metrics;

namespace SockTrace.Agent.Hosting;

/// <summary>
/// /metrics: the OpenTelemetry exporter's exposition with the families the agent aggregates
/// itself (<see cref="AcceptMetrics"/>, <see cref="FdRaceMetrics"/>, <see cref="DeliveryMetrics"/>) appended, in the format the exporter chose
/// (OpenMetrics when the scraper asks for it, else text 0.0.4).
/// </summary>
internal static class MetricsEndpoint
{
    public const string Path = "/metrics";
    private const string TextFormat = "text/plain; charset=utf-8; version=0.0.4";
    private static readonly byte[] Eof = "# EOF\n"u8.ToArray();

    public static void MapMetrics(this WebApplication app)
    {
        var accepts = app.Services.GetRequiredService<AcceptMetrics>();
        var deliveries = app.Services.GetRequiredService<DeliveryMetrics>();
        var races = app.Services.GetRequiredService<FdRaceMetrics>();
        app.Use(async (context, next) =>
        {
            if (context.Request.Path != Path)
            {
                await next(context);
                return;
            }
            // The exporter would gzip its part, and text cannot be appended to that: it writes
            // plain text here, and the whole response is compressed below when asked for.
            bool gzip = context.Request.Headers.AcceptEncoding.Any(e => e?.Contains("gzip", StringComparison.OrdinalIgnoreCase) == true);
            context.Request.Headers.AcceptEncoding = StringValues.Empty;
            var body = context.Response.Body;
            using var exported = new MemoryStream();
            context.Response.Body = exported;
            try
            {
                await next(context);
            }
            finally
            {
                context.Response.Body = body;
            }
            if (context.Response.StatusCode != StatusCodes.Status200OK)
            {
                await body.WriteAsync(exported.GetBuffer().AsMemory(0, (int)exported.Length));
                return;
            }
            // An exporter with nothing to say writes no body and no type: then ours is plain text.
            context.Response.ContentType ??= TextFormat;
            bool openMetrics = context.Response.ContentType.StartsWith("application/openmetrics-text", StringComparison.Ordinal);
            var own = new StringBuilder();
            var writer = new ExpositionWriter(own, openMetrics);
            accepts.WriteTo(writer);
            races.WriteTo(writer);
            deliveries.WriteTo(writer);

            if (gzip)
            {
                context.Response.Headers.ContentEncoding = "gzip";
                context.Response.Headers.Vary = "Accept-Encoding";
            }
            var output = gzip ? new GZipStream(body, CompressionLevel.Fastest, leaveOpen: true) : body;
            try
            {
                // OpenMetrics ends with "# EOF": the appended families go before it.
                var head = exported.GetBuffer().AsMemory(0, (int)exported.Length);
                bool endsWithEof = head.Span.EndsWith(Eof);
                await output.WriteAsync(endsWithEof ? head[..^Eof.Length] : head);
                await output.WriteAsync(Encoding.UTF8.GetBytes(own.ToString()));
                if (openMetrics)
                    await output.WriteAsync(Eof);
            }
            finally
            {
                if (gzip)
                    await output.DisposeAsync();
            }
        });
        app.MapPrometheusScrapingEndpoint(Path);
    }
}
