using System.Runtime.InteropServices;

namespace SockTrace.Agent.Bpf;

/// <summary>
/// Owns a struct bpf_link. The link is fd-based, so the kernel detaches the program when
/// the process dies even if this handle is never released. It keeps the object it came
/// from alive: the program a link points at belongs to that object.
/// </summary>
internal sealed class BpfLinkHandle : SafeHandle
{
    private readonly BpfObjectHandle _owner;
    private readonly Action? _afterDestroy;

    /// <param name="afterDestroy">Runs once the link is gone (e.g. removing a kprobe event it used).</param>
    internal BpfLinkHandle(nint link, BpfObjectHandle owner, Action? afterDestroy = null) : base(0, ownsHandle: true)
    {
        _afterDestroy = afterDestroy;
        bool added = false;
        owner.DangerousAddRef(ref added);
        _owner = owner;
        SetHandle(link);
    }

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        Interop.Libbpf.bpf_link__destroy(handle);
        _owner.DangerousRelease();
        _afterDestroy?.Invoke();
        return true;
    }
}
