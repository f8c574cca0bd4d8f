using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SockTrace.Agent.Events;

namespace SockTrace.Tests.Events;

public sealed class RecordDecoderTests
{
    private sealed class Recorder : IAcceptHandler, IFdRaceHandler
    {
        public List<AcceptRecord> Seen { get; } = [];
        public List<FdRaceRecord> Races { get; } = [];
        public void OnAccept(in AcceptRecord record) => Seen.Add(record);
        public void OnFdRace(in FdRaceRecord record) => Races.Add(record);
    }

    private static byte[] Bytes(AcceptRecord record)
    {
        var bytes = new byte[Unsafe.SizeOf<AcceptRecord>()];
        MemoryMarshal.Write(bytes, in record);
        return bytes;
    }

    private static AcceptRecord Accept(int ret = 5) => new()
    {
        Header = new RecordHeader { Type = RecordTypes.Accept, Size = (uint)Unsafe.SizeOf<AcceptRecord>() },
        Pid = 42,
        Ret = ret,
        ListenPort = 8080,
    };

    [Fact]
    public void DecodesAWellFormedRecordInPlace()
    {
        var recorder = new Recorder();
        var decoder = new RecordDecoder(recorder, recorder);

        decoder.OnRecord(Bytes(Accept()));

        var seen = Assert.Single(recorder.Seen);
        Assert.Equal(42u, seen.Pid);
        Assert.Equal((ushort)8080, seen.ListenPort);
        Assert.Equal(1, decoder.Decoded(RecordTypes.Accept));
        Assert.Equal(0, decoder.Invalid);
    }

    public static TheoryData<string, byte[]> Malformed()
    {
        byte[] good = Bytes(Accept());
        byte[] wrongSize = (byte[])good.Clone();
        BitConverter.TryWriteBytes(wrongSize.AsSpan(4), 12u);
        byte[] unknownType = (byte[])good.Clone();
        BitConverter.TryWriteBytes(unknownType.AsSpan(0), 99u);
        byte[] truncated = good[..40];
        BitConverter.TryWriteBytes(truncated.AsSpan(4), 40u);
        byte[] oversized = [.. good, .. new byte[8]];
        BitConverter.TryWriteBytes(oversized.AsSpan(4), (uint)oversized.Length);
        return new()
        {
            { "empty", [] },
            { "shorter than a header", new byte[7] },
            { "size field disagrees with length", wrongSize },
            { "unknown type", unknownType },
            { "accept record truncated", truncated },
            { "accept record oversized", oversized },
        };
    }

    [Theory]
    [MemberData(nameof(Malformed))]
    public void RejectsAndCountsMalformedRecords(string why, byte[] record)
    {
        var recorder = new Recorder();
        var decoder = new RecordDecoder(recorder, recorder);

        decoder.OnRecord(record);

        Assert.True(recorder.Seen.Count == 0, why);
        Assert.Equal(1, decoder.Invalid);
        Assert.Equal(0, decoder.Decoded(RecordTypes.Accept));
    }
}
