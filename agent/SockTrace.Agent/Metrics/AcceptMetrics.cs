using System.Diagnostics.Metrics;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>Turns accept records into the accept counters and histograms.</summary>
public sealed class AcceptMetrics : IAcceptHandler
{
    private const double NsPerSecond = 1e9;
    private readonly SeriesLimit _limit;
    private readonly AcceptLabels _labels;
    private readonly PodCounter _accepts;
    private readonly PodCounter _errors;
    private readonly Histogram<double> _duration;
    private readonly Histogram<double> _queueWait;

    /// <param name="attribution">Non-null with --attribution on: the counters gain namespace, pod and container.</param>
    public AcceptMetrics(IMeterFactory meterFactory, SeriesLimit? limit = null, Attribution.PodAttribution? attribution = null)
    {
        _limit = limit ?? new SeriesLimit(meterFactory);
        _labels = new AcceptLabels(_limit.MaxPerMetric);
        var meter = meterFactory.Create(SockTraceMeter.Name);
        var buckets = new InstrumentAdvice<double> { HistogramBucketBoundaries = SockTraceMeter.LatencyBuckets };
        _accepts = new PodCounter(meter, "socktrace.accepts",
            "Successful accept()/accept4() calls, by listening port, accepting process and peer.", attribution);
        _errors = new PodCounter(meter, "socktrace.accept.errors",
            "Failed accept()/accept4() calls, by listening port, accepting process and errno.", attribution);
        _duration = meter.CreateHistogram("socktrace.accept.duration", "s",
            "Time from accept()/accept4() entry to return.", advice: buckets);
        _queueWait = meter.CreateHistogram("socktrace.accept.queue_wait", "s",
            "Time an established connection waited in the listen queue before accept returned it.", advice: buckets);
    }

    public void OnAccept(in AcceptRecord r)
    {
        AcceptLabels.Entry labels;
        if (r.Ret >= 0)
        {
            labels = _labels.Accepted(in r, PeerAddress.Classify(r.Family, r.PeerAddr, r.PeerLocal != 0));
            _accepts.Add(labels.Tags, r.CgroupId);
            if (labels.TagsFolded)
                _limit.Folded(SeriesLimit.Accepts);
            if (r.EstablishedNs != 0 && r.ExitNs >= r.EstablishedNs && _queueWait.Enabled)
            {
                _queueWait.Record((r.ExitNs - r.EstablishedNs) / NsPerSecond, labels.PortComm);
                if (labels.PortCommFolded)
                    _limit.Folded(SeriesLimit.AcceptQueueWait);
            }
        }
        else
        {
            labels = _labels.Failed(in r, -r.Ret);
            _errors.Add(labels.Tags, r.CgroupId);
            if (labels.TagsFolded)
                _limit.Folded(SeriesLimit.AcceptErrors);
        }
        if (_duration.Enabled)
        {
            _duration.Record((r.ExitNs - r.EnterNs) / NsPerSecond, labels.PortComm);
            if (labels.PortCommFolded)
                _limit.Folded(SeriesLimit.AcceptDuration);
        }
    }
}
