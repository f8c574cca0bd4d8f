using System.Security.Cryptography;
using System.Text;

namespace SockTrace.Agent.Hosting;

/// <summary>
/// Bearer-token authorization in front of /metrics and /races (which names pids and fds);
/// /healthz stays open for the kubelet's probes. A request passes with the token of
/// --auth-token-file, or with --auth-kubernetes a token the API server authenticates and
/// authorizes (<see cref="KubernetesReviewer"/>). No token: 401; a token not accepted: 401
/// when no one vouches for it, 403 when its user may not get the path.
/// </summary>
internal static partial class EndpointAuthorization
{
    public static readonly string[] ProtectedPaths = [MetricsEndpoint.Path, "/races"];

    public static void UseEndpointAuthorization(this WebApplication app, AgentOptions options)
    {
        if (options.AuthTokenFile is null && !options.AuthKubernetes)
            return;
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("SockTrace.Agent.Hosting.EndpointAuthorization");
        StaticToken? staticToken = options.AuthTokenFile is { } file ? new StaticToken(file) : null;
        var reviewer = options.AuthKubernetes ? new KubernetesReviewer(new KubernetesApi(ApiServerConfig()), logger) : null;
        app.Use(async (context, next) =>
        {
            string path = context.Request.Path.Value ?? "";
            if (!ProtectedPaths.Contains(path))
            {
                await next(context);
                return;
            }
            int status = await Decide(context, path, staticToken, reviewer, logger);
            if (status == StatusCodes.Status200OK)
            {
                await next(context);
                return;
            }
            context.Response.StatusCode = status;
            if (status == StatusCodes.Status401Unauthorized)
                context.Response.Headers.WWWAuthenticate = "Bearer";
            await context.Response.WriteAsync(status switch
            {
                StatusCodes.Status401Unauthorized => "Unauthorized\n",
                StatusCodes.Status403Forbidden => "Forbidden\n",
                _ => "authorization unavailable\n",
            });
        });
    }

    private static async Task<int> Decide(HttpContext context, string path, StaticToken? staticToken, KubernetesReviewer? reviewer, ILogger logger)
    {
        string header = context.Request.Headers.Authorization.ToString();
        const string Bearer = "Bearer ";
        if (!header.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase) || header.Length == Bearer.Length)
            return StatusCodes.Status401Unauthorized;
        string token = header[Bearer.Length..].Trim();
        if (staticToken?.Matches(token) == true)
            return StatusCodes.Status200OK;
        if (reviewer is null)
            return StatusCodes.Status401Unauthorized;
        try
        {
            return await reviewer.ReviewAsync(token, path, context.RequestAborted);
        }
        catch (Exception ex) when (ex is HttpRequestException or System.Text.Json.JsonException or TaskCanceledException)
        {
            // Not cached: the next scrape asks again.
            LogReviewFailed(logger, path, ex.Message);
            return StatusCodes.Status503ServiceUnavailable;
        }
    }

    private static KubernetesConfig ApiServerConfig()
    {
        try
        {
            return KubernetesConfig.Load();
        }
        catch (Exception ex) when (KubernetesConfig.IsConfigError(ex))
        {
            throw new StartupException(ExitCodes.SecurityFile,
                $"{AgentSettings.AuthKubernetes.Flag} needs the pod's service account token or $KUBECONFIG: {ex.Message}");
        }
    }

    /// <summary>The token of --auth-token-file, compared in constant time; a rotated file is read again.</summary>
    private sealed class StaticToken
    {
        private readonly WatchedFile _file;
        private volatile byte[] _token;

        public StaticToken(string path)
        {
            _file = new WatchedFile(path);
            _token = Trim(_file.ReadOrFail("token file"));
            if (_token.Length == 0)
                throw new StartupException(ExitCodes.SecurityFile, $"token file {path} is empty");
        }

        public bool Matches(string token)
        {
            if (_file.Changed() is { } changed && Trim(changed) is { Length: > 0 } trimmed)
                _token = trimmed;
            return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(token), _token);
        }

        private static byte[] Trim(byte[] content) => Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(content).Trim());
    }

    [LoggerMessage(EventId = 1822, Level = LogLevel.Warning, Message = "GET {Path}: the API server's review failed: {Reason}")]
    private static partial void LogReviewFailed(ILogger logger, string path, string reason);
}
