using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SockTrace.Agent.Events;

/// <summary>Receives decoded accept records; the reference is valid only during the call.</summary>
public interface IAcceptHandler
{
    void OnAccept(in AcceptRecord record);
}

/// <summary>Receives decoded fd race records; the reference is valid only during the call.</summary>
public interface IFdRaceHandler
{
    void OnFdRace(in FdRaceRecord record);
}

/// <summary>Receives the records the agent joins to accept records: a child entering its accept
/// queue, and a client of this host completing its connect. Valid only during the call.</summary>
public interface IConnectionHandler
{
    void OnEstablished(in EstablishedRecord record);

    void OnClient(in ClientRecord record);
}

/// <summary>Why the decoder rejected a record: the reason label of socktrace_records_rejected_total.</summary>
public static class RejectReasons
{
    public const int Short = 0;           // shorter than a record header
    public const int Size = 1;            // the header's size is not the record's length, or not its type's size
    public const int Type = 2;            // a type no record has
    public const int ExitBeforeEntry = 3; // an accept that returned before it was called
    public const int Family = 4;          // an accept's family is neither AF_INET nor AF_INET6 (nor 0: unknown, or an error)
    public const int Errno = 5;           // a failed accept's -ret is no errno (1..4095, MAX_ERRNO)
    public const int Count = 6;

    private static readonly string[] Names = ["short", "size", "type", "exit_before_entry", "family", "errno"];

    public static string Label(int reason) => Names[reason];
}

/// <summary>
/// Validates raw records, their shape and what they say, and hands typed views of them to
/// the handlers, without copying. Counts every record by type, and every record it rejects
/// by reason. Called from one thread.
/// </summary>
public sealed class RecordDecoder : IRecordSink
{
    private const ushort AfInet = 2, AfInet6 = 10;
    private const int MaxErrno = 4095; // include/linux/err.h

    private readonly IAcceptHandler _accepts;
    private readonly IFdRaceHandler _races;
    private readonly IConnectionHandler? _connections;
    private readonly long[] _decoded = new long[RecordTypes.Count];
    private readonly long[] _rejected = new long[RejectReasons.Count];

    /// <param name="connections">Where ESTABLISHED and CLIENT records go; when null, <paramref name="accepts"/> if it takes them.</param>
    public RecordDecoder(IAcceptHandler accepts, IFdRaceHandler races, IConnectionHandler? connections = null)
    {
        _accepts = accepts;
        _races = races;
        _connections = connections ?? accepts as IConnectionHandler;
    }

    /// <summary>Records decoded of <paramref name="type"/> so far (safe from any thread).</summary>
    public long Decoded(uint type) => type < (uint)_decoded.Length ? Volatile.Read(ref _decoded[type]) : 0;

    /// <summary>Records rejected for <paramref name="reason"/> (<see cref="RejectReasons"/>) so far (safe from any thread).</summary>
    public long Rejected(int reason) => Volatile.Read(ref _rejected[reason]);

    /// <summary>Records rejected, for any reason.</summary>
    public long Invalid
    {
        get
        {
            long sum = 0;
            for (int i = 0; i < _rejected.Length; i++)
                sum += Volatile.Read(ref _rejected[i]);
            return sum;
        }
    }

    public void OnRecord(ReadOnlySpan<byte> record)
    {
        if (record.Length < Unsafe.SizeOf<RecordHeader>())
        {
            Reject(RejectReasons.Short);
            return;
        }
        var header = MemoryMarshal.Read<RecordHeader>(record);
        if (header.Size != (uint)record.Length)
        {
            Reject(RejectReasons.Size);
            return;
        }
        switch (header.Type)
        {
            case RecordTypes.Accept when record.Length == Unsafe.SizeOf<AcceptRecord>():
                ref readonly var accept = ref MemoryMarshal.AsRef<AcceptRecord>(record);
                if (Meaningless(in accept) is { } reason)
                {
                    Reject(reason);
                    return;
                }
                Count(RecordTypes.Accept);
                _accepts.OnAccept(in accept);
                break;
            case RecordTypes.FdRace when record.Length == Unsafe.SizeOf<FdRaceRecord>():
                Count(RecordTypes.FdRace);
                _races.OnFdRace(in MemoryMarshal.AsRef<FdRaceRecord>(record));
                break;
            case RecordTypes.Established when record.Length == Unsafe.SizeOf<EstablishedRecord>():
                Count(RecordTypes.Established);
                _connections?.OnEstablished(in MemoryMarshal.AsRef<EstablishedRecord>(record));
                break;
            case RecordTypes.Client when record.Length == Unsafe.SizeOf<ClientRecord>():
                Count(RecordTypes.Client);
                _connections?.OnClient(in MemoryMarshal.AsRef<ClientRecord>(record));
                break;
            case RecordTypes.Accept or RecordTypes.FdRace or RecordTypes.Established or RecordTypes.Client:
                Reject(RejectReasons.Size);
                break;
            default:
                Reject(RejectReasons.Type);
                break;
        }
    }

    /// <summary>
    /// What no kernel can have meant: a call that returned before it began (both stamps are
    /// CLOCK_MONOTONIC on one machine), a family the programs never write (they copy
    /// skc_family of an inet sock, or leave 0), an error with a family, or an error that is
    /// no errno. Such a record would put a negative duration or a made-up label into /metrics.
    /// </summary>
    private static int? Meaningless(in AcceptRecord r)
    {
        if (r.ExitNs < r.EnterNs)
            return RejectReasons.ExitBeforeEntry;
        if (r.Family is not (0 or AfInet or AfInet6) || (r.Ret < 0 && r.Family != 0))
            return RejectReasons.Family;
        if (r.Ret < -MaxErrno)
            return RejectReasons.Errno;
        return null;
    }

    private void Count(uint type) => Volatile.Write(ref _decoded[type], _decoded[type] + 1);

    private void Reject(int reason) => Volatile.Write(ref _rejected[reason], _rejected[reason] + 1);
}
