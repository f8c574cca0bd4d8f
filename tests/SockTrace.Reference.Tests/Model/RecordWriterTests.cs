using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SockTrace.Agent.Events;

namespace SockTrace.Reference.Tests.Model;

/// <summary>The model writes bpf/socktrace.h records by offset; the agent's structs (checked
/// against the C header in SockTrace.Tests) must read back every field it wrote.</summary>
public sealed class RecordWriterTests
{
    [Fact]
    public void SizesMatchTheAgentsStructs()
    {
        Assert.Equal(RecordWriter.AcceptSize, Unsafe.SizeOf<AcceptRecord>());
        Assert.Equal(RecordWriter.FdRaceSize, Unsafe.SizeOf<FdRaceRecord>());
        Assert.Equal(RecordTypes.Accept, RecordWriter.AcceptType);
        Assert.Equal(RecordTypes.FdRace, RecordWriter.FdRaceType);
        Assert.Equal(RaceKinds.Dup2Busy, RecordWriter.RaceDup2Busy);
        Assert.Equal(RaceKinds.DoubleClose, RecordWriter.RaceDoubleClose);
    }

    [Fact]
    public void AnAcceptRecordReadsBackFieldByField()
    {
        byte[] peer = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        var bytes = RecordWriter.Write(new RecordWriter.Accept(11, 12, -24, 8080, 10, 100, 200, 50, peer, 40001, true, "a-very-long-process-name", 77));
        var r = MemoryMarshal.Read<AcceptRecord>(bytes);

        Assert.Equal((RecordTypes.Accept, (uint)bytes.Length), (r.Header.Type, r.Header.Size));
        Assert.Equal((11u, 12u, -24, (ushort)8080, (ushort)10), (r.Pid, r.Tid, r.Ret, r.ListenPort, r.Family));
        Assert.Equal((100UL, 200UL, 50UL, 0UL), (r.EnterNs, r.ExitNs, r.EstablishedNs, r.CgroupId));
        Assert.Equal(peer, ((ReadOnlySpan<byte>)r.PeerAddr).ToArray());
        Assert.Equal(40001, r.PeerPort);
        Assert.Equal(1, BitConverter.ToUInt16(bytes, (int)Marshal.OffsetOf<AcceptRecord>(nameof(AcceptRecord.PeerPort)) + 2)); // peer_local
        Assert.Equal("a-very-long-pro", System.Text.Encoding.UTF8.GetString(((ReadOnlySpan<byte>)r.Comm).TrimEnd((byte)0)));
        Assert.Equal(77UL, r.FdClosedNs);
    }

    [Fact]
    public void AnFdRaceRecordReadsBackFieldByField()
    {
        var bytes = RecordWriter.Write(new RecordWriter.FdRace(11, 12, 7, RecordWriter.RaceDoubleClose, 300, 25, 13, "nginx"));
        var r = MemoryMarshal.Read<FdRaceRecord>(bytes);

        Assert.Equal((RecordTypes.FdRace, (uint)bytes.Length), (r.Header.Type, r.Header.Size));
        Assert.Equal((11u, 12u, 7, RaceKinds.DoubleClose), (r.Pid, r.Tid, r.Fd, r.Kind));
        Assert.Equal((300UL, 0UL, 25UL, 13u), (r.TimestampNs, r.CgroupId, r.GapNs, r.OtherTid));
        Assert.Equal("nginx", System.Text.Encoding.UTF8.GetString(((ReadOnlySpan<byte>)r.Comm).TrimEnd((byte)0)));
    }
}
