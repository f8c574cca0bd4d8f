using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Events;

/// <summary>
/// The decoder reads memory the kernel wrote; a bug on either side must cost a counted,
/// rejected record, never the agent. Seeded, so a failure replays exactly.
/// </summary>
public sealed class RecordDecoderFuzzTests
{
    private enum Shape { Accept, FdRace, Truncated, Oversized, BitFlipped, SizeLies, Garbage, ExitBeforeEntry, ImpossibleFamily, ImpossibleErrno }

    private const int MaxErrno = 4095;

    private static readonly int AcceptSize = Unsafe.SizeOf<AcceptRecord>();
    private static readonly int RaceSize = Unsafe.SizeOf<FdRaceRecord>();
    private static readonly int HeaderSize = Unsafe.SizeOf<RecordHeader>();

    [Theory]
    [InlineData(1, 100_000)]
    [InlineData(20261125, 100_000)]
    public void RandomRecordsAreDecodedOrRejectedAndCounted(int seed, int records)
    {
        var random = new Random(seed);
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        var acceptMetrics = new AcceptMetrics(meters);
        var raceMetrics = new FdRaceMetrics(meters, new RecentRaces(), NullLogger<FdRaceMetrics>.Instance);
        var decoder = new RecordDecoder(acceptMetrics, raceMetrics);

        var expected = new Dictionary<string, long> { ["accept"] = 0, ["fd_race"] = 0 };
        for (int reason = 0; reason < RejectReasons.Count; reason++)
            expected[RejectReasons.Label(reason)] = 0;
        var shapes = Enum.GetValues<Shape>().ToDictionary(s => s, _ => 0);
        for (int i = 0; i < records; i++)
        {
            var shape = (Shape)random.Next(Enum.GetValues<Shape>().Length);
            shapes[shape]++;
            byte[] record = Make(random, shape, out string outcome);
            expected[outcome]++;
            decoder.OnRecord(record);
        }

        Assert.All(shapes, s => Assert.True(s.Value > records / 20, $"{s.Key}: only {s.Value} generated"));
        Assert.Equal(expected["accept"], decoder.Decoded(RecordTypes.Accept));
        Assert.Equal(expected["fd_race"], decoder.Decoded(RecordTypes.FdRace));
        // Each rejected record under the reason it was made for.
        for (int reason = 0; reason < RejectReasons.Count; reason++)
            Assert.True(expected[RejectReasons.Label(reason)] == decoder.Rejected(reason),
                $"{RejectReasons.Label(reason)}: expected {expected[RejectReasons.Label(reason)]}, rejected {decoder.Rejected(reason)}");
        Assert.All(Enumerable.Range(0, RejectReasons.Count), reason => Assert.True(expected[RejectReasons.Label(reason)] > 0, $"no {RejectReasons.Label(reason)} record generated"));
        Assert.Equal(expected.Where(e => e.Key is not ("accept" or "fd_race")).Sum(e => e.Value), decoder.Invalid);
        // Every accepted record reached its metric, every rejected one none.
        // What /metrics shows: every decoded record counted once, nothing from a rejected one.
        var samples = Exposition.Of(acceptMetrics);
        Assert.Equal(expected["accept"], samples.Sum("socktrace_accepts_total") + samples.Sum("socktrace_accept_errors_total"));
        Assert.Equal(expected["fd_race"], Exposition.Of(raceMetrics).Sum("socktrace_fd_races_total"));
    }

    /// <summary>A record of the given shape, and what the decoder must make of it.</summary>
    private static byte[] Make(Random random, Shape shape, out string outcome)
    {
        switch (shape)
        {
            case Shape.Accept:
                outcome = "accept";
                return Valid(random, RecordTypes.Accept);
            case Shape.FdRace:
                outcome = "fd_race";
                return Valid(random, RecordTypes.FdRace);
            case Shape.Truncated:
            {
                // Cut short, with the size field either left alone or made to agree.
                byte[] whole = Valid(random, AnyType(random));
                byte[] cut = whole[..random.Next(whole.Length)];
                if (cut.Length >= HeaderSize && random.Next(2) == 0)
                    SetSize(cut, (uint)cut.Length);
                outcome = cut.Length < HeaderSize ? "short" : "size";
                return cut;
            }
            case Shape.Oversized:
            {
                byte[] whole = Valid(random, AnyType(random));
                byte[] longer = new byte[whole.Length + 1 + random.Next(4096)];
                whole.CopyTo(longer, 0);
                random.NextBytes(longer.AsSpan(whole.Length));
                SetSize(longer, (uint)longer.Length);
                outcome = "size";
                return longer;
            }
            case Shape.BitFlipped:
            {
                // A flip in the header changes the type to one no record has, or to another
                // record's, whose size this one is not (1 and 2 become 3, 1 becomes 5...), or
                // the size away from the length; in an accept's stamps, ret or family it may
                // change what the record says; elsewhere it is just data.
                byte[] record = Valid(random, AnyType(random));
                int bit = random.Next(record.Length * 8);
                record[bit / 8] ^= (byte)(1 << (bit % 8));
                uint type = MemoryMarshal.Read<uint>(record);
                outcome = bit < 32 ? (type is >= 1 and < RecordTypes.Count ? "size" : "type") : bit < HeaderSize * 8 ? "size" : Meaning(record);
                return record;
            }
            case Shape.ExitBeforeEntry:
            {
                byte[] record = Valid(random, RecordTypes.Accept);
                ref var r = ref MemoryMarshal.AsRef<AcceptRecord>(record.AsSpan());
                r.ExitNs = r.EnterNs - 1 - (ulong)random.NextInt64(0, (long)Math.Min(r.EnterNs - 1, 10_000_000_000UL));
                outcome = "exit_before_entry";
                return record;
            }
            case Shape.ImpossibleFamily:
            {
                byte[] record = Valid(random, RecordTypes.Accept);
                ref var r = ref MemoryMarshal.AsRef<AcceptRecord>(record.AsSpan());
                // A family no inet sock has, or any family on a failed call.
                if (r.Ret < 0)
                    r.Family = (ushort)(random.Next(2) == 0 ? 2 : 10);
                else
                    do
                        r.Family = (ushort)random.Next(ushort.MaxValue + 1);
                    while (r.Family is 0 or 2 or 10);
                outcome = "family";
                return record;
            }
            case Shape.ImpossibleErrno:
            {
                byte[] record = Valid(random, RecordTypes.Accept);
                ref var r = ref MemoryMarshal.AsRef<AcceptRecord>(record.AsSpan());
                r.Family = 0;
                r.Ret = random.Next(int.MinValue, -MaxErrno);
                outcome = "errno";
                return record;
            }
            case Shape.SizeLies:
            {
                byte[] record = Valid(random, AnyType(random));
                uint size;
                do
                    size = (uint)random.NextInt64(uint.MaxValue + 1L);
                while (size == record.Length);
                SetSize(record, size);
                outcome = "size";
                return record;
            }
            default:
            {
                byte[] garbage = new byte[random.Next(512)];
                random.NextBytes(garbage);
                outcome = WellFormed(garbage);
                return garbage;
            }
        }
    }

    /// <summary>Random garbage is decodable only if its header happens to be exactly right,
    /// and an accept only if it also means something.</summary>
    private static string WellFormed(byte[] bytes)
    {
        if (bytes.Length < HeaderSize)
            return "short";
        var header = MemoryMarshal.Read<RecordHeader>(bytes);
        if (header.Size != bytes.Length)
            return "size";
        return header.Type switch
        {
            RecordTypes.Accept when bytes.Length == AcceptSize => Meaning(bytes),
            RecordTypes.FdRace when bytes.Length == RaceSize => "fd_race",
            RecordTypes.Accept or RecordTypes.FdRace => "size",
            _ => "type",
        };
    }

    /// <summary>The rules for a well-formed record, written from the ABI (bpf/socktrace.h): an
    /// accept returns after it is called; its family is 0, AF_INET or AF_INET6, and 0 when it
    /// failed; a failure is -errno, 1 to 4095.</summary>
    private static string Meaning(byte[] record)
    {
        if (MemoryMarshal.Read<RecordHeader>(record).Type != RecordTypes.Accept)
            return "fd_race";
        var r = MemoryMarshal.Read<AcceptRecord>(record);
        if (r.ExitNs < r.EnterNs)
            return "exit_before_entry";
        if (r.Family is not (0 or 2 or 10) || (r.Ret < 0 && r.Family != 0))
            return "family";
        return r.Ret < -MaxErrno ? "errno" : "accept";
    }

    private static uint AnyType(Random random) => random.Next(2) == 0 ? RecordTypes.Accept : RecordTypes.FdRace;

    /// <summary>A well-formed record whose every other field is random: ports, fds, comms
    /// that are not UTF-8, established stamps anywhere, kinds no kernel sends; an accept's
    /// stamps, ret and family within what a kernel can send.</summary>
    private static byte[] Valid(Random random, uint type)
    {
        int size = type == RecordTypes.Accept ? AcceptSize : RaceSize;
        byte[] bytes = new byte[size];
        random.NextBytes(bytes);
        MemoryMarshal.Write(bytes, new RecordHeader { Type = type, Size = (uint)size });
        if (type == RecordTypes.Accept)
        {
            ref var r = ref MemoryMarshal.AsRef<AcceptRecord>(bytes.AsSpan());
            r.EnterNs = (ulong)random.NextInt64(2, long.MaxValue / 2);
            r.ExitNs = r.EnterNs + (ulong)random.NextInt64(0, 100_000_000_000);
            bool failed = random.Next(2) == 0;
            r.Ret = failed ? -random.Next(1, MaxErrno + 1) : random.Next(int.MaxValue);
            r.Family = failed ? (ushort)0 : (ushort)(random.Next(3) switch { 0 => 0, 1 => 2, _ => 10 });
        }
        return bytes;
    }

    private static void SetSize(byte[] record, uint size) => BitConverter.TryWriteBytes(record.AsSpan(4), size);
}
