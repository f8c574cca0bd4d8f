namespace SockTrace.Agent.Metrics;

/// <summary>
/// One histogram series over <see cref="SockTraceMeter.LatencyBuckets"/>: a count per bucket
/// and the sum. Recording is a bucket search and two additions; the owner serialises it with
/// the scrape that writes it out.
/// </summary>
internal sealed class LatencyHistogram
{
    private static readonly double[] Bounds = [.. SockTraceMeter.LatencyBuckets];
    private static readonly string[] BoundLabels = [.. Bounds.Select(ExpositionWriter.Number)];

    // One more than the bounds: the last counts values above the highest bound (le="+Inf" only).
    private readonly long[] _counts = new long[Bounds.Length + 1];
    private double _sum;

    public long Count { get; private set; }

    public void Record(double seconds)
    {
        // Prometheus buckets are upper-inclusive (le): the first bound not below the value.
        int i = 0;
        while (i < Bounds.Length && seconds > Bounds[i])
            i++;
        _counts[i]++;
        _sum += seconds;
        Count++;
    }

    public void WriteTo(ExpositionWriter writer, string name, KeyValuePair<string, object?>[] labels)
    {
        long cumulative = 0;
        for (int i = 0; i < Bounds.Length; i++)
        {
            cumulative += _counts[i];
            writer.Sample(name + "_bucket", labels, cumulative, BoundLabels[i]);
        }
        writer.Sample(name + "_bucket", labels, Count, "+Inf");
        writer.Sample(name + "_sum", labels, _sum);
        writer.Sample(name + "_count", labels, Count);
    }
}
