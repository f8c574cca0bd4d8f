using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace SockTrace.Agent.Hosting;

/// <summary>
/// Who may read /metrics and /races, asked of the API server the way kube-rbac-proxy asks
/// it: a TokenReview says whose the bearer token is, then a SubjectAccessReview whether that
/// user (with its groups, uid and extra) may `get` the non-resource URL requested. A scraper
/// presents the same token every few seconds, so each answer is kept for <see cref="Ttl"/>.
/// </summary>
internal sealed partial class KubernetesReviewer(KubernetesApi api, ILogger logger)
{
    public static readonly TimeSpan Ttl = TimeSpan.FromSeconds(30);
    private const int MaxEntries = 1024;
    private readonly ConcurrentDictionary<(string Token, string Path), (int Status, long Expires)> _cache = new();

    /// <summary>200, 401 (not a valid token) or 403 (a user not allowed this path).</summary>
    public async Task<int> ReviewAsync(string token, string path, CancellationToken cancellationToken)
    {
        // The cache keys on a hash: the agent keeps no caller's token in memory longer than a request.
        var key = (Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(token))), path);
        long now = Environment.TickCount64;
        if (_cache.TryGetValue(key, out var cached) && cached.Expires > now)
            return cached.Status;
        int status = await AskAsync(token, path, cancellationToken);
        if (_cache.Count >= MaxEntries)
            _cache.Clear();
        _cache[key] = (status, now + (long)Ttl.TotalMilliseconds);
        return status;
    }

    private async Task<int> AskAsync(string token, string path, CancellationToken cancellationToken)
    {
        var review = await api.ReviewTokenAsync(token, cancellationToken);
        if (review.Status?.Authenticated != true || review.Status.User is not { } user)
        {
            LogUnauthenticated(path, review.Status?.Error ?? "not authenticated");
            return StatusCodes.Status401Unauthorized;
        }
        var access = await api.ReviewAccessAsync(
            new SubjectAccessReviewSpec(user.Username, user.Groups, user.Uid, user.Extra, new NonResourceAttributes(path, "get")), cancellationToken);
        if (access.Status?.Allowed == true)
            return StatusCodes.Status200OK;
        LogForbidden(user.Username ?? "", path, access.Status?.Reason ?? "");
        return StatusCodes.Status403Forbidden;
    }

    [LoggerMessage(EventId = 1820, Level = LogLevel.Information, Message = "GET {Path} refused: token review: {Reason}")]
    private partial void LogUnauthenticated(string path, string reason);

    [LoggerMessage(EventId = 1821, Level = LogLevel.Information, Message = "GET {Path} refused to {User}: not allowed to get it ({Reason})")]
    private partial void LogForbidden(string user, string path, string reason);
}
