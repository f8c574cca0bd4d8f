using System.Runtime.InteropServices;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Bpf;

/// <summary>
/// Drains a BPF ring buffer on a dedicated thread, handing each record to a sink as a
/// span over the mapped ring memory: no copy and no allocation per record. The BPF side
/// submits without waking the reader (see bpf/common.bpf.h st_submit), so the reader also
/// drains on a bounded interval.
/// </summary>
public sealed unsafe class RingBufferReader : IDisposable
{
    private readonly RingBufferHandle _ring = new();
    private readonly IRecordSink _sink;
    private readonly int _pollIntervalMs;
    private readonly Thread _thread;
    private GCHandle _self;
    private volatile bool _stopping;
    private Exception? _callbackFailure;

    public RingBufferReader(int mapFd, IRecordSink sink, TimeSpan pollInterval)
    {
        _sink = sink;
        _pollIntervalMs = (int)pollInterval.TotalMilliseconds;
        _self = GCHandle.Alloc(this);
        nint rb = Interop.Libbpf.ring_buffer__new(mapFd, &OnSample, GCHandle.ToIntPtr(_self), 0);
        if (rb == 0)
        {
            _self.Free();
            throw new BpfException("ring_buffer__new", Marshal.GetLastPInvokeError(), $"map fd {mapFd}");
        }
        _ring.Initialize(rb);
        _thread = new Thread(Run) { Name = "socktrace ringbuf", IsBackground = true };
    }

    /// <summary>Raised on the reader thread when draining fails; the reader has stopped.</summary>
    public event Action<Exception>? Faulted;

    public void Start() => _thread.Start();

    private void Run()
    {
        try
        {
            while (!_stopping)
            {
                // poll() consumes only after an epoll wakeup; consume() drains what
                // arrived without one (BPF_RB_NO_WAKEUP submissions).
                Check(Interop.Libbpf.ring_buffer__poll(_ring, _pollIntervalMs), "ring_buffer__poll");
                Check(Interop.Libbpf.ring_buffer__consume(_ring), "ring_buffer__consume");
            }
            Check(Interop.Libbpf.ring_buffer__consume(_ring), "ring_buffer__consume");
        }
        catch (Exception ex)
        {
            Faulted?.Invoke(ex);
        }
    }

    private void Check(int result, string call)
    {
        if (_callbackFailure is { } failure)
            throw new InvalidOperationException("record handling failed: " + failure.Message, failure);
        const int EINTR = 4;
        if (result < 0 && result != -EINTR)
            throw new BpfException(call, -result, "");
    }

    [UnmanagedCallersOnly]
    private static int OnSample(nint ctx, void* data, nuint size)
    {
        var reader = (RingBufferReader)GCHandle.FromIntPtr(ctx).Target!;
        try
        {
            reader._sink.OnRecord(new ReadOnlySpan<byte>(data, (int)size));
            return 0;
        }
        catch (Exception ex)
        {
            // An exception must not cross into libbpf; a non-zero return stops the drain.
            reader._callbackFailure = ex;
            return -1;
        }
    }

    /// <summary>Stops the thread after a final drain, then frees the ring.</summary>
    public void Dispose()
    {
        _stopping = true;
        if (_thread.IsAlive)
            _thread.Join();
        _ring.Dispose();
        if (_self.IsAllocated)
            _self.Free();
    }
}
