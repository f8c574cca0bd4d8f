using System.Runtime.InteropServices;

namespace SockTrace.Agent.Bpf;

/// <summary>Owns a struct bpf_object: its programs and maps close with it.</summary>
internal sealed class BpfObjectHandle : SafeHandle
{
    public BpfObjectHandle() : base(0, ownsHandle: true) { }

    public override bool IsInvalid => handle == 0;

    internal void Initialize(nint obj) => SetHandle(obj);

    protected override bool ReleaseHandle()
    {
        Interop.Libbpf.bpf_object__close(handle);
        return true;
    }
}
