using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// Label sets for the accept metrics, built once per distinct (port, comm, peer or errno)
/// and reused, so recording a record allocates nothing. Used from the reader thread only.
/// </summary>
internal sealed class AcceptLabels
{
    /// <summary>A raw, allocation-free key: the 16 comm bytes as two longs.</summary>
    private readonly record struct Key(ushort Port, ulong Comm0, ulong Comm1, int Discriminator);

    internal sealed class Entry(KeyValuePair<string, object?>[] tags, KeyValuePair<string, object?>[] portComm)
    {
        /// <summary>port, comm and peer (accepts) or errno (errors).</summary>
        public readonly KeyValuePair<string, object?>[] Tags = tags;

        /// <summary>port and comm (the histograms).</summary>
        public readonly KeyValuePair<string, object?>[] PortComm = portComm;
    }

    private readonly Dictionary<Key, Entry> _accepted = [];
    private readonly Dictionary<Key, Entry> _failed = [];

    public Entry Accepted(in AcceptRecord r, PeerClass peer) =>
        Lookup(_accepted, in r, (int)peer, "peer", static d => PeerAddress.Label((PeerClass)d));

    public Entry Failed(in AcceptRecord r, int errno) =>
        Lookup(_failed, in r, errno, "errno", static d => ErrnoNames.Name(d));

    private static Entry Lookup(Dictionary<Key, Entry> cache, in AcceptRecord r, int discriminator, string name, Func<int, string> label)
    {
        ReadOnlySpan<byte> comm = r.Comm;
        var key = new Key(r.ListenPort, MemoryMarshal.Read<ulong>(comm), MemoryMarshal.Read<ulong>(comm[8..]), discriminator);
        if (cache.TryGetValue(key, out var entry))
            return entry;
        string port = r.ListenPort.ToString(CultureInfo.InvariantCulture);
        string commText = CommText(comm);
        entry = new Entry(
            [new("port", port), new("comm", commText), new(name, label(discriminator))],
            [new("port", port), new("comm", commText)]);
        cache.Add(key, entry);
        return entry;
    }

    /// <summary>task->comm is NUL-padded and may hold any bytes; invalid UTF-8 becomes U+FFFD.</summary>
    internal static string CommText(ReadOnlySpan<byte> comm)
    {
        int end = comm.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? comm : comm[..end]);
    }
}
