using System.Text;

namespace SockTrace.Agent.Metrics;

/// <summary>The comm label: a task's name as the kernel keeps it.</summary>
internal static class CommLabel
{
    /// <summary>task->comm is NUL-padded and may hold any bytes; invalid UTF-8 becomes U+FFFD.</summary>
    public static string Text(ReadOnlySpan<byte> comm)
    {
        int end = comm.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? comm : comm[..end]);
    }
}
