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

/// <summary>
/// Validates raw records and hands typed views of them to the handlers, without copying.
/// Counts every record by type, and every record it rejects. Called from one thread.
/// </summary>
public sealed class RecordDecoder : IRecordSink
{
    private readonly IAcceptHandler _accepts;
    private readonly IFdRaceHandler _races;
    private readonly long[] _decoded = new long[RecordTypes.Count];
    private long _invalid;

    public RecordDecoder(IAcceptHandler accepts, IFdRaceHandler races)
    {
        _accepts = accepts;
        _races = races;
    }

    /// <summary>Records decoded of <paramref name="type"/> so far (safe from any thread).</summary>
    public long Decoded(uint type) => type < (uint)_decoded.Length ? Volatile.Read(ref _decoded[type]) : 0;

    /// <summary>Records rejected as short, oversized or of an unknown type.</summary>
    public long Invalid => Volatile.Read(ref _invalid);

    public void OnRecord(ReadOnlySpan<byte> record)
    {
        if (record.Length < Unsafe.SizeOf<RecordHeader>())
        {
            Reject();
            return;
        }
        var header = MemoryMarshal.Read<RecordHeader>(record);
        if (header.Size != (uint)record.Length)
        {
            Reject();
            return;
        }
        switch (header.Type)
        {
            case RecordTypes.Accept when record.Length == Unsafe.SizeOf<AcceptRecord>():
                Count(RecordTypes.Accept);
                _accepts.OnAccept(in MemoryMarshal.AsRef<AcceptRecord>(record));
                break;
            case RecordTypes.FdRace when record.Length == Unsafe.SizeOf<FdRaceRecord>():
                Count(RecordTypes.FdRace);
                _races.OnFdRace(in MemoryMarshal.AsRef<FdRaceRecord>(record));
                break;
            default:
                Reject();
                break;
        }
    }

    private void Count(uint type) => Volatile.Write(ref _decoded[type], _decoded[type] + 1);

    private void Reject() => Volatile.Write(ref _invalid, _invalid + 1);
}
