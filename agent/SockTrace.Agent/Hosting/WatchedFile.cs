namespace SockTrace.Agent.Hosting;

/// <summary>
/// A small file (a certificate, a key, a token) that another process replaces while the
/// agent runs: cert-manager rotates certificates, and the kubelet updates a Secret volume
/// by swapping a symlink, so neither a path nor an mtime is a reliable change signal. The
/// content is read again at most once per <see cref="MinInterval"/> and compared.
/// </summary>
internal sealed class WatchedFile(string path)
{
    public static readonly TimeSpan MinInterval = TimeSpan.FromSeconds(1);
    private readonly Lock _lock = new();
    private byte[] _content = [];
    private long _checkedAt = long.MinValue;

    public string Path { get; } = path;

    /// <summary>Reads it now; a missing or unreadable file is a <see cref="StartupException"/>.</summary>
    public byte[] ReadOrFail(string what)
    {
        if (Directory.Exists(Path))
            throw new StartupException(ExitCodes.SecurityFile, $"cannot read {what} {Path}: it is a directory");
        try
        {
            byte[] content = File.ReadAllBytes(Path);
            lock (_lock)
            {
                _content = content;
                _checkedAt = Environment.TickCount64;
            }
            return content;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StartupException(ExitCodes.SecurityFile, $"cannot read {what} {Path}: {ex.Message}");
        }
    }

    /// <summary>The new content when the file changed since the last look, else null. A file
    /// that is briefly missing or unreadable mid-rotation counts as unchanged.</summary>
    public byte[]? Changed()
    {
        lock (_lock)
        {
            long now = Environment.TickCount64;
            if (now - _checkedAt < (long)MinInterval.TotalMilliseconds)
                return null;
            _checkedAt = now;
            byte[] content;
            try
            {
                content = File.ReadAllBytes(Path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return null;
            }
            if (content.AsSpan().SequenceEqual(_content))
                return null;
            _content = content;
            return content;
        }
    }
}
