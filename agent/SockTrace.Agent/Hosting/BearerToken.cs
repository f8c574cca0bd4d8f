namespace SockTrace.Agent.Hosting;

/// <summary>
/// The bearer token the agent presents to the API server: a kubeconfig's inline `token`, or
/// a file (the service account's projected token, a kubeconfig's `tokenFile`) that the
/// kubelet rewrites before the token expires (about hourly, by default). The file is read
/// again when the last read is older than <see cref="RefreshInterval"/>, as client-go's
/// cached file token source does; a failed read keeps the previous token, so a file caught
/// mid-rotation costs no request.
/// </summary>
public sealed class BearerToken
{
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromMinutes(1);

    private readonly Lock _lock = new();
    private readonly string? _path;
    private readonly long _refreshMs;
    private string _token;
    private long _readAt;

    private BearerToken(string token, string? path, TimeSpan refresh)
    {
        _token = token;
        _path = path;
        _refreshMs = (long)refresh.TotalMilliseconds;
        _readAt = Environment.TickCount64;
    }

    public static BearerToken Inline(string token) =>
        token.Trim() is { Length: > 0 } trimmed ? new BearerToken(trimmed, null, RefreshInterval) : throw new KubernetesConfigException("the token is empty");

    /// <summary>Reads it now: missing, unreadable or empty is a <see cref="KubernetesConfigException"/>.
    /// <paramref name="refresh"/> (<see cref="RefreshInterval"/> unless given) is for tests.</summary>
    public static BearerToken FromFile(string path, TimeSpan? refresh = null) =>
        new(Read(path) is { Length: > 0 } token ? token : throw new KubernetesConfigException($"the token file {path} is empty"),
            path, refresh ?? RefreshInterval);

    /// <summary>The file it is read from, or null for an inline token.</summary>
    public string? Path => _path;

    public string Value
    {
        get
        {
            if (_path is null)
                return _token;
            lock (_lock)
            {
                long now = Environment.TickCount64;
                if (now - _readAt >= _refreshMs)
                {
                    _readAt = now;
                    try
                    {
                        if (Read(_path) is { Length: > 0 } token)
                            _token = token;
                    }
                    catch (KubernetesConfigException)
                    {
                        // Keep the last token: the kubelet swaps the file in place of the old one.
                    }
                }
                return _token;
            }
        }
    }

    private static string Read(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new KubernetesConfigException($"cannot read the token file {path}: {ex.Message}");
        }
    }
}
