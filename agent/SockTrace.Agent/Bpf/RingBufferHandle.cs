using System.Runtime.InteropServices;

namespace SockTrace.Agent.Bpf;

/// <summary>Owns a libbpf struct ring_buffer (its mmaps and epoll fd).</summary>
internal sealed class RingBufferHandle : SafeHandle
{
    public RingBufferHandle() : base(0, ownsHandle: true) { }

    public override bool IsInvalid => handle == 0;

    internal void Initialize(nint rb) => SetHandle(rb);

    protected override bool ReleaseHandle()
    {
        Interop.Libbpf.ring_buffer__free(handle);
        return true;
    }
}
