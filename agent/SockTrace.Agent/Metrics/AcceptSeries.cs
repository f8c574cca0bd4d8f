using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// Label sets for the accept metrics, built once per distinct (port, comm, peer or errno)
/// and reused, so recording a record allocates nothing. At most
/// <see cref="SeriesLimit.MaxPerMetric"/> of each kind are kept; past that, records share a
/// set whose port and comm are "other". Used from the reader thread only.
/// </summary>
internal sealed class AcceptLabels(int maxPerMetric = SeriesLimit.DefaultMaxPerMetric)
{
    /// <summary>A raw, allocation-free key: the 16 comm bytes as two longs.</summary>
    private readonly record struct Key(ushort Port, ulong Comm0, ulong Comm1, int Discriminator);

    private readonly record struct PortCommKey(ushort Port, ulong Comm0, ulong Comm1);

    internal sealed class Entry(KeyValuePair<string, object?>[] tags, bool tagsFolded, KeyValuePair<string, object?>[] portComm, bool portCommFolded)
    {
        /// <summary>port, comm and peer (accepts) or errno (errors).</summary>
        public readonly KeyValuePair<string, object?>[] Tags = tags;

        /// <summary>Tags holds port="other", comm="other": the metric was at its cap.</summary>
        public readonly bool TagsFolded = tagsFolded;

        /// <summary>port and comm (the histograms).</summary>
        public readonly KeyValuePair<string, object?>[] PortComm = portComm;

        /// <summary>PortComm is port="other", comm="other": the histograms were at their cap.</summary>
        public readonly bool PortCommFolded = portCommFolded;
    }

    private static readonly KeyValuePair<string, object?>[] OtherPortComm = [new("port", SeriesLimit.Other), new("comm", SeriesLimit.Other)];

    private readonly Dictionary<Key, Entry> _accepted = [];
    private readonly Dictionary<Key, Entry> _failed = [];
    // Both caches share the histograms' (port, comm) sets, which are capped on their own.
    private readonly Dictionary<PortCommKey, KeyValuePair<string, object?>[]> _portComm = [];
    // One folded entry per peer class or errno name: both are bounded sets.
    private readonly Dictionary<int, Entry> _acceptedOther = [];
    private readonly Dictionary<int, Entry> _failedOther = [];

    public Entry Accepted(in AcceptRecord r, PeerClass peer) =>
        Lookup(_accepted, _acceptedOther, in r, (int)peer, "peer", static d => PeerAddress.Label((PeerClass)d));

    /// <summary>errnos outside the kernel's range share one label, so they share one entry.</summary>
    public Entry Failed(in AcceptRecord r, int errno) =>
        Lookup(_failed, _failedOther, in r, ErrnoNames.Name(errno) == "errno_other" ? -1 : errno, "errno", static d => ErrnoNames.Name(d));

    private Entry Lookup(Dictionary<Key, Entry> cache, Dictionary<int, Entry> others, in AcceptRecord r, int discriminator, string name, Func<int, string> label)
    {
        ReadOnlySpan<byte> comm = r.Comm;
        var portCommKey = new PortCommKey(r.ListenPort, MemoryMarshal.Read<ulong>(comm), MemoryMarshal.Read<ulong>(comm[8..]));
        var key = new Key(portCommKey.Port, portCommKey.Comm0, portCommKey.Comm1, discriminator);
        if (cache.TryGetValue(key, out var entry))
            return entry;
        if (cache.Count >= maxPerMetric)
        {
            // Not cached: the folded sets are found by the bounded discriminator alone, so
            // records past the cap add nothing to the agent's memory.
            if (!others.TryGetValue(discriminator, out entry))
                others[discriminator] = entry = new Entry([.. OtherPortComm, new(name, label(discriminator))], true, OtherPortComm, true);
            return entry;
        }
        string port = r.ListenPort.ToString(CultureInfo.InvariantCulture);
        string commText = CommText(comm);
        bool portCommFolded = false;
        if (!_portComm.TryGetValue(portCommKey, out var portComm))
        {
            if (_portComm.Count < maxPerMetric)
                _portComm.Add(portCommKey, portComm = [new("port", port), new("comm", commText)]);
            else
                (portComm, portCommFolded) = (OtherPortComm, true);
        }
        entry = new Entry([new("port", port), new("comm", commText), new(name, label(discriminator))], false, portComm, portCommFolded);
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
