using System.Buffers.Binary;
using System.Text;

namespace SockTrace.Reference;

/// <summary>
/// Writes records in the bpf/socktrace.h layout (little-endian, as on every architecture
/// SockTrace runs on), so the model's output goes through the agent's own decoder.
/// Offsets are the header's; a test checks them against the agent's C# structs.
/// </summary>
public static class RecordWriter
{
    public const uint AcceptType = 1;   // ST_RECORD_ACCEPT
    public const uint FdRaceType = 2;   // ST_RECORD_FD_RACE
    public const int AcceptSize = 136;  // sizeof(struct st_accept_record)
    public const int FdRaceSize = 72;   // sizeof(struct st_fd_race_record)
    public const uint RaceDup2Busy = 1;        // ST_RACE_DUP2_BUSY
    public const uint RaceDoubleClose = 3;     // ST_RACE_DOUBLE_CLOSE

    public readonly record struct Accept(
        uint Pid, uint Tid, int Ret, ushort ListenPort, ushort Family,
        ulong EnterNs, ulong ExitNs, ulong EstablishedNs, byte[] PeerAddr, ushort PeerPort, bool PeerLocal, string Comm, ulong FdClosedNs = 0);

    public readonly record struct FdRace(uint Pid, uint Tid, int Fd, uint Kind, ulong TimestampNs, ulong GapNs, uint OtherTid, string Comm);

    public static byte[] Write(in Accept a)
    {
        var b = new byte[AcceptSize];
        Header(b, AcceptType);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), a.Pid);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), a.Tid);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(16), a.Ret);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(20), a.ListenPort);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(22), a.Family);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(24), a.EnterNs);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(32), a.ExitNs);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(40), a.EstablishedNs);
        // cgroup_id at 48 stays 0: the model has no cgroups.
        a.PeerAddr.AsSpan(0, Math.Min(16, a.PeerAddr.Length)).CopyTo(b.AsSpan(56));
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(72), a.PeerPort);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(74), a.PeerLocal ? (ushort)1 : (ushort)0);
        Comm(b.AsSpan(80), a.Comm);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(96), a.FdClosedNs);
        return b;
    }

    public static byte[] Write(in FdRace r)
    {
        var b = new byte[FdRaceSize];
        Header(b, FdRaceType);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), r.Pid);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), r.Tid);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(16), r.Fd);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(20), r.Kind);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(24), r.TimestampNs);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(40), r.GapNs);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(48), r.OtherTid);
        Comm(b.AsSpan(56), r.Comm);
        return b;
    }

    private static void Header(Span<byte> b, uint type)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b, type);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], (uint)b.Length);
    }

    /// <summary>task->comm: at most 15 bytes and a NUL (TASK_COMM_LEN).</summary>
    private static void Comm(Span<byte> field, string comm)
    {
        var bytes = Encoding.UTF8.GetBytes(comm);
        bytes.AsSpan(0, Math.Min(bytes.Length, 15)).CopyTo(field);
    }
}
