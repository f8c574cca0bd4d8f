using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;

namespace SockTrace.Tests.Events;

/// <summary>
/// The decoder reads memory the kernel wrote; a bug on either side must cost a counted,
/// rejected record, never the agent. Seeded, so a failure replays exactly.
/// </summary>
public sealed class RecordDecoderFuzzTests
{
    private enum Shape { Accept, FdRace, Truncated, Oversized, BitFlipped, SizeLies, Garbage }

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
        using var accepts = new MetricCollector<long>(meters, SockTraceMeter.Name, "socktrace.accepts");
        using var errors = new MetricCollector<long>(meters, SockTraceMeter.Name, "socktrace.accept.errors");
        using var races = new MetricCollector<long>(meters, SockTraceMeter.Name, "socktrace.fd_races");
        var decoder = new RecordDecoder(new AcceptMetrics(meters), new FdRaceMetrics(meters, new RecentRaces(), NullLogger<FdRaceMetrics>.Instance));

        var expected = new Dictionary<string, long> { ["accept"] = 0, ["fd_race"] = 0, ["invalid"] = 0 };
        var shapes = Enum.GetValues<Shape>().ToDictionary(s => s, _ => 0);
        for (int i = 0; i < records; i++)
        {
            var shape = (Shape)random.Next(Enum.GetValues<Shape>().Length);
            shapes[shape]++;
            byte[] record = Make(random, shape, out string outcome);
            expected[outcome]++;
            decoder.OnRecord(record);
        }

        Assert.All(shapes, s => Assert.True(s.Value > records / 10, $"{s.Key}: only {s.Value} generated"));
        Assert.Equal(expected["accept"], decoder.Decoded(RecordTypes.Accept));
        Assert.Equal(expected["fd_race"], decoder.Decoded(RecordTypes.FdRace));
        Assert.Equal(expected["invalid"], decoder.Invalid);
        // Every accepted record reached its metric, every rejected one none.
        Assert.Equal(expected["accept"], accepts.GetMeasurementSnapshot().Sum(m => m.Value) + errors.GetMeasurementSnapshot().Sum(m => m.Value));
        Assert.Equal(expected["fd_race"], races.GetMeasurementSnapshot().Sum(m => m.Value));
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
                outcome = "invalid";
                return cut;
            }
            case Shape.Oversized:
            {
                byte[] whole = Valid(random, AnyType(random));
                byte[] longer = new byte[whole.Length + 1 + random.Next(4096)];
                whole.CopyTo(longer, 0);
                random.NextBytes(longer.AsSpan(whole.Length));
                SetSize(longer, (uint)longer.Length);
                outcome = "invalid";
                return longer;
            }
            case Shape.BitFlipped:
            {
                // A flip in the header changes the type to one no record has (1 and 2 differ
                // in two bits) or the size away from the length; elsewhere it is just data.
                byte[] record = Valid(random, AnyType(random));
                int bit = random.Next(record.Length * 8);
                record[bit / 8] ^= (byte)(1 << (bit % 8));
                bool inHeader = bit < HeaderSize * 8;
                uint type = MemoryMarshal.Read<RecordHeader>(record).Type;
                outcome = inHeader ? "invalid" : type == RecordTypes.Accept ? "accept" : "fd_race";
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
                outcome = "invalid";
                return record;
            }
            default:
            {
                byte[] garbage = new byte[random.Next(512)];
                random.NextBytes(garbage);
                outcome = WellFormed(garbage) ?? "invalid";
                return garbage;
            }
        }
    }

    /// <summary>Random garbage is decodable only if its header happens to be exactly right.</summary>
    private static string? WellFormed(byte[] bytes)
    {
        if (bytes.Length < HeaderSize)
            return null;
        var header = MemoryMarshal.Read<RecordHeader>(bytes);
        if (header.Size != bytes.Length)
            return null;
        return header.Type switch
        {
            RecordTypes.Accept when bytes.Length == AcceptSize => "accept",
            RecordTypes.FdRace when bytes.Length == RaceSize => "fd_race",
            _ => null,
        };
    }

    private static uint AnyType(Random random) => random.Next(2) == 0 ? RecordTypes.Accept : RecordTypes.FdRace;

    /// <summary>A well-formed record whose every other field is random: ports, errnos, comms
    /// that are not UTF-8, timestamps that run backwards, kinds no kernel sends.</summary>
    private static byte[] Valid(Random random, uint type)
    {
        int size = type == RecordTypes.Accept ? AcceptSize : RaceSize;
        byte[] bytes = new byte[size];
        random.NextBytes(bytes);
        MemoryMarshal.Write(bytes, new RecordHeader { Type = type, Size = (uint)size });
        return bytes;
    }

    private static void SetSize(byte[] record, uint size) => BitConverter.TryWriteBytes(record.AsSpan(4), size);
}
