using SockTrace.Agent.Attribution;

namespace SockTrace.Tests.Attribution;

public sealed class CgroupPathTests
{
    private const string Id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    private const string Id2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    private const string Uid = "5f0e2b4c-9a1d-4e3f-8b7a-6c5d4e3f2a1b";
    private const string UidUnderscores = "5f0e2b4c_9a1d_4e3f_8b7a_6c5d4e3f2a1b";

    public static TheoryData<string, string?, string?> Paths => new()
    {
        // containerd, systemd driver, each QoS class
        { $"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UidUnderscores}.slice/cri-containerd-{Id}.scope", Id, Uid },
        { $"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UidUnderscores}.slice/cri-containerd-{Id}.scope", Id, Uid },
        { $"/kubepods.slice/kubepods-pod{UidUnderscores}.slice/cri-containerd-{Id}.scope", Id, Uid },
        // CRI-O, systemd driver; its conmon scope is outside the container
        { $"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UidUnderscores}.slice/crio-{Id}.scope", Id, Uid },
        { $"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UidUnderscores}.slice/crio-conmon-{Id}.scope", null, Uid },
        // a sub-cgroup of the container (systemd or a nested cgroup inside it)
        { $"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UidUnderscores}.slice/crio-{Id}.scope/container", Id, Uid },
        { $"/kubepods.slice/kubepods-pod{UidUnderscores}.slice/cri-containerd-{Id}.scope/init.scope", Id, Uid },
        // cgroupfs driver (containerd or Docker as the CRI)
        { $"/kubepods/burstable/pod{Uid}/{Id}", Id, Uid },
        { $"/kubepods/besteffort/pod{Uid}/{Id}", Id, Uid },
        { $"/kubepods/pod{Uid}/{Id}", Id, Uid },
        // kind: the kubelet's cgroup root is kubelet.slice
        { $"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UidUnderscores}.slice/cri-containerd-{Id}.scope", Id, Uid },
        // a static pod: the kubelet names its cgroup by the 32-hex config hash
        { $"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0123456789abcdef0123456789abcdef.slice/cri-containerd-{Id}.scope", Id, "0123456789abcdef0123456789abcdef" },
        // Docker without Kubernetes, both drivers; Podman
        { $"/system.slice/docker-{Id}.scope", Id, null },
        { $"/docker/{Id}", Id, null },
        { $"/machine.slice/libpod-{Id}.scope/container", Id, null },
        // Docker-in-Docker: the pod's container, not the outer node container
        { $"/docker/{Id2}/kubepods/burstable/pod{Uid}/{Id}", Id, Uid },
        { $"/docker/{Id2}/kubepods/burstable/pod{Uid}", null, Uid },
        // the pod's own slice, and host processes
        { $"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UidUnderscores}.slice", null, Uid },
        { "/kubepods.slice/kubepods-burstable.slice", null, null },
        { "/system.slice/containerd.service", null, null },
        { "/system.slice/kubelet.service", null, null },
        { "/user.slice/user-1000.slice/session-3.scope", null, null },
        { "/", null, null },
        { "", null, null },
    };

    [Theory]
    [MemberData(nameof(Paths))]
    public void ReadsTheContainerAndPodTheRuntimeNamed(string path, string? container, string? pod)
    {
        Assert.Equal(new ContainerCgroup(container, pod), CgroupPath.Parse(path));
    }

    [Theory]
    // one digit short, upper case, not hex, an unknown runtime's prefix
    [InlineData("/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde.scope")]
    [InlineData("/system.slice/docker-0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF.scope")]
    [InlineData("/kubepods/burstable/podnot-a-uid/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg")]
    [InlineData("/system.slice/other-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope")]
    public void LookalikesNameNoContainer(string path)
    {
        Assert.Null(CgroupPath.Parse(path).ContainerId);
    }

    [Fact]
    public void APodSliceOutsideKubepodsIsNoPod()
    {
        Assert.Null(CgroupPath.Parse($"/user.slice/app-pod{UidUnderscores}.slice").PodUid);
    }
}
