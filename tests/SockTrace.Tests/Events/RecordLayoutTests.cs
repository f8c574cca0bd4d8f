using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SockTrace.Agent.Events;

namespace SockTrace.Tests.Events;

/// <summary>
/// bpf/socktrace.h and its C# twins must agree byte for byte. The header is compiled by the
/// C compiler, which prints every size and offset; the C# layout must match each one.
/// </summary>
public sealed class RecordLayoutTests
{
    private static readonly Lazy<Dictionary<string, long>> CLayout = new(CompileAndMeasure);

    public static TheoryData<string, Type, string> Fields => new()
    {
        { "st_record_header.type", typeof(RecordHeader), nameof(RecordHeader.Type) },
        { "st_record_header.size", typeof(RecordHeader), nameof(RecordHeader.Size) },
        { "st_accept_record.hdr", typeof(AcceptRecord), nameof(AcceptRecord.Header) },
        { "st_accept_record.pid", typeof(AcceptRecord), nameof(AcceptRecord.Pid) },
        { "st_accept_record.tid", typeof(AcceptRecord), nameof(AcceptRecord.Tid) },
        { "st_accept_record.ret", typeof(AcceptRecord), nameof(AcceptRecord.Ret) },
        { "st_accept_record.lport", typeof(AcceptRecord), nameof(AcceptRecord.ListenPort) },
        { "st_accept_record.family", typeof(AcceptRecord), nameof(AcceptRecord.Family) },
        { "st_accept_record.enter_ns", typeof(AcceptRecord), nameof(AcceptRecord.EnterNs) },
        { "st_accept_record.exit_ns", typeof(AcceptRecord), nameof(AcceptRecord.ExitNs) },
        { "st_accept_record.established_ns", typeof(AcceptRecord), nameof(AcceptRecord.EstablishedNs) },
        { "st_accept_record.cgroup_id", typeof(AcceptRecord), nameof(AcceptRecord.CgroupId) },
        { "st_accept_record.peer_addr", typeof(AcceptRecord), nameof(AcceptRecord.PeerAddr) },
        { "st_accept_record.peer_port", typeof(AcceptRecord), nameof(AcceptRecord.PeerPort) },
        { "st_accept_record.peer_local", typeof(AcceptRecord), nameof(AcceptRecord.PeerLocal) },
        { "st_accept_record.comm", typeof(AcceptRecord), nameof(AcceptRecord.Comm) },
        { "st_accept_record.netns", typeof(AcceptRecord), nameof(AcceptRecord.Netns) },
        { "st_accept_record.fd_closed_ns", typeof(AcceptRecord), nameof(AcceptRecord.FdClosedNs) },
        { "st_accept_record.listener", typeof(AcceptRecord), nameof(AcceptRecord.Listener) },
        { "st_accept_record.sk", typeof(AcceptRecord), nameof(AcceptRecord.Sock) },
        { "st_accept_record.queue_depth", typeof(AcceptRecord), nameof(AcceptRecord.QueueDepth) },
        { "st_accept_record.queue_limit", typeof(AcceptRecord), nameof(AcceptRecord.QueueLimit) },
        { "st_accept_record.syn_queue", typeof(AcceptRecord), nameof(AcceptRecord.SynQueue) },
        { "st_established_record.hdr", typeof(EstablishedRecord), nameof(EstablishedRecord.Header) },
        { "st_established_record.sk", typeof(EstablishedRecord), nameof(EstablishedRecord.Sock) },
        { "st_established_record.ns", typeof(EstablishedRecord), nameof(EstablishedRecord.TimestampNs) },
        { "st_established_record.peer_addr", typeof(EstablishedRecord), nameof(EstablishedRecord.PeerAddr) },
        { "st_established_record.peer_port", typeof(EstablishedRecord), nameof(EstablishedRecord.PeerPort) },
        { "st_established_record.family", typeof(EstablishedRecord), nameof(EstablishedRecord.Family) },
        { "st_client_record.hdr", typeof(ClientRecord), nameof(ClientRecord.Header) },
        { "st_client_record.addr", typeof(ClientRecord), nameof(ClientRecord.Addr) },
        { "st_client_record.port", typeof(ClientRecord), nameof(ClientRecord.Port) },
        { "st_client_record.family", typeof(ClientRecord), nameof(ClientRecord.Family) },
        { "st_accept_error_key.cgroup_id", typeof(AcceptErrorKey), nameof(AcceptErrorKey.CgroupId) },
        { "st_accept_error_key.lport", typeof(AcceptErrorKey), nameof(AcceptErrorKey.ListenPort) },
        { "st_accept_error_key.err", typeof(AcceptErrorKey), nameof(AcceptErrorKey.Errno) },
        { "st_accept_error_key.comm", typeof(AcceptErrorKey), nameof(AcceptErrorKey.Comm) },
        { "st_accept_error_slot.key", typeof(AcceptErrorSlot), nameof(AcceptErrorSlot.Key) },
        { "st_accept_error_slot.count", typeof(AcceptErrorSlot), nameof(AcceptErrorSlot.Count) },
        { "st_fd_race_record.hdr", typeof(FdRaceRecord), nameof(FdRaceRecord.Header) },
        { "st_fd_race_record.pid", typeof(FdRaceRecord), nameof(FdRaceRecord.Pid) },
        { "st_fd_race_record.tid", typeof(FdRaceRecord), nameof(FdRaceRecord.Tid) },
        { "st_fd_race_record.fd", typeof(FdRaceRecord), nameof(FdRaceRecord.Fd) },
        { "st_fd_race_record.kind", typeof(FdRaceRecord), nameof(FdRaceRecord.Kind) },
        { "st_fd_race_record.ts_ns", typeof(FdRaceRecord), nameof(FdRaceRecord.TimestampNs) },
        { "st_fd_race_record.cgroup_id", typeof(FdRaceRecord), nameof(FdRaceRecord.CgroupId) },
        { "st_fd_race_record.gap_ns", typeof(FdRaceRecord), nameof(FdRaceRecord.GapNs) },
        { "st_fd_race_record.other_tid", typeof(FdRaceRecord), nameof(FdRaceRecord.OtherTid) },
        { "st_fd_race_record.comm", typeof(FdRaceRecord), nameof(FdRaceRecord.Comm) },
        { "st_listen_value.overflows", typeof(ListenValue), nameof(ListenValue.Overflows) },
        { "st_listen_value.syn_drops", typeof(ListenValue), nameof(ListenValue.SynDrops) },
        { "st_listen_value.cookies", typeof(ListenValue), nameof(ListenValue.Cookies) },
        { "st_listen_value.queues_ns", typeof(ListenValue), nameof(ListenValue.QueuesNs) },
        { "st_listen_value.drops_seen", typeof(ListenValue), nameof(ListenValue.DropsSeen) },
        { "st_listen_value.seen_ns", typeof(ListenValue), nameof(ListenValue.SeenNs) },
        { "st_listen_value.addr", typeof(ListenValue), nameof(ListenValue.Addr) },
        { "st_listen_value.netns", typeof(ListenValue), nameof(ListenValue.Netns) },
        { "st_listen_value.port", typeof(ListenValue), nameof(ListenValue.Port) },
        { "st_listen_value.family", typeof(ListenValue), nameof(ListenValue.Family) },
        { "st_listen_value.depth", typeof(ListenValue), nameof(ListenValue.Depth) },
        { "st_listen_value.limit", typeof(ListenValue), nameof(ListenValue.Limit) },
        { "st_listen_value.syn_queue", typeof(ListenValue), nameof(ListenValue.SynQueue) },
        { "st_rx_key.netns", typeof(RxKey), nameof(RxKey.Netns) },
        { "st_rx_key.ifindex", typeof(RxKey), nameof(RxKey.Ifindex) },
        { "st_rx_slot.key", typeof(RxSlot), nameof(RxSlot.Key) },
        { "st_rx_slot.packets", typeof(RxSlot), nameof(RxSlot.Packets) },
        { "st_rx_slot.bytes", typeof(RxSlot), nameof(RxSlot.Bytes) },
        { "st_rx_count.packets", typeof(RxCount), nameof(RxCount.Packets) },
        { "st_rx_count.bytes", typeof(RxCount), nameof(RxCount.Bytes) },
        { "st_rx_name.path", typeof(RxName), nameof(RxName.Path) },
        { "st_rx_name.name", typeof(RxName), nameof(RxName.Name) },
        { "st_delivery_key.netns", typeof(DeliveryKey), nameof(DeliveryKey.Netns) },
        { "st_delivery_key.path", typeof(DeliveryKey), nameof(DeliveryKey.Path) },
        { "st_delivery_value.bytes", typeof(DeliveryValue), nameof(DeliveryValue.Bytes) },
        { "st_delivery_value.segments", typeof(DeliveryValue), nameof(DeliveryValue.Segments) },
        { "st_delivery_latency.buckets", typeof(DeliveryLatencyValue), nameof(DeliveryLatencyValue.Buckets) },
        { "st_delivery_latency.sum_ns", typeof(DeliveryLatencyValue), nameof(DeliveryLatencyValue.SumNs) },
        { "st_local_pair_key.netns", typeof(LocalPairKey), nameof(LocalPairKey.Netns) },
        { "st_local_pair_key.port", typeof(LocalPairKey), nameof(LocalPairKey.Port) },
        { "st_local_pair_key.comm", typeof(LocalPairKey), nameof(LocalPairKey.Comm) },
        { "st_config.wakeup_bytes", typeof(BpfConfig), nameof(BpfConfig.WakeupBytes) },
        { "st_config.double_close_window_ns", typeof(BpfConfig), nameof(BpfConfig.DoubleCloseWindowNs) },
        { "st_config.flags", typeof(BpfConfig), nameof(BpfConfig.Flags) },
        { "st_config.self_tgid", typeof(BpfConfig), nameof(BpfConfig.SelfTgid) },
    };

    public static TheoryData<string, Type> Structs => new()
    {
        { "st_record_header", typeof(RecordHeader) },
        { "st_accept_record", typeof(AcceptRecord) },
        { "st_fd_race_record", typeof(FdRaceRecord) },
        { "st_config", typeof(BpfConfig) },
        { "st_listen_value", typeof(ListenValue) },
        { "st_established_record", typeof(EstablishedRecord) },
        { "st_client_record", typeof(ClientRecord) },
        { "st_accept_error_key", typeof(AcceptErrorKey) },
        { "st_accept_error_slot", typeof(AcceptErrorSlot) },
        { "st_rx_key", typeof(RxKey) },
        { "st_rx_slot", typeof(RxSlot) },
        { "st_rx_count", typeof(RxCount) },
        { "st_rx_name", typeof(RxName) },
        { "st_delivery_key", typeof(DeliveryKey) },
        { "st_delivery_value", typeof(DeliveryValue) },
        { "st_delivery_latency", typeof(DeliveryLatencyValue) },
        { "st_local_pair_key", typeof(LocalPairKey) },
    };

    [Theory]
    [MemberData(nameof(Fields))]
    public void FieldOffsetsMatchTheHeader(string cField, Type type, string csField) =>
        Assert.Equal(CLayout.Value["offsetof " + cField], (long)Marshal.OffsetOf(type, csField));

    [Theory]
    [MemberData(nameof(Structs))]
    public void SizesMatchTheHeader(string cStruct, Type type)
    {
        Assert.Equal(CLayout.Value["sizeof " + cStruct], (long)Marshal.SizeOf(type));
        Assert.Equal(Marshal.SizeOf(type), (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(type).Invoke(null, null)!);
    }

    [Fact]
    public void ConstantsMatchTheHeader()
    {
        Assert.Equal(RecordTypes.Accept, CLayout.Value["ST_RECORD_ACCEPT"]);
        Assert.Equal(RecordTypes.Count, CLayout.Value["ST_RECORD_TYPE_COUNT"]);
        Assert.Equal(KernelCounters.RingBufferDrops, CLayout.Value["ST_COUNTER_RINGBUF_DROPS"]);
        Assert.Equal(KernelCounters.PendingMapFull, CLayout.Value["ST_COUNTER_PENDING_FULL"]);
        Assert.Equal(KernelCounters.RecordsProduced, CLayout.Value["ST_COUNTER_PRODUCED"]);
        Assert.Equal(KernelCounters.NoEntry, CLayout.Value["ST_COUNTER_NO_ENTRY"]);
        Assert.Equal(KernelCounters.ReturnMissed, CLayout.Value["ST_COUNTER_RETURN_MISSED"]);
        Assert.Equal(KernelCounters.ErrorsLost, CLayout.Value["ST_COUNTER_ERRORS_LOST"]);
        Assert.Equal(KernelCounters.UringFixed, CLayout.Value["ST_COUNTER_URING_FIXED"]);
        Assert.Equal(SockTrace.Agent.Bpf.HookSelfTest.SelfAccept, CLayout.Value["ST_SELF_ACCEPT"]);
        Assert.Equal(SockTrace.Agent.Bpf.HookSelfTest.SelfDup, CLayout.Value["ST_SELF_DUP"]);
        Assert.Equal(SockTrace.Agent.Bpf.HookSelfTest.SelfClose, CLayout.Value["ST_SELF_CLOSE"]);
        Assert.Equal(RecordTypes.Established, CLayout.Value["ST_RECORD_ESTABLISHED"]);
        Assert.Equal(RecordTypes.Client, CLayout.Value["ST_RECORD_CLIENT"]);
        Assert.Equal((uint)BpfConfigFlags.Casts, CLayout.Value["ST_CFG_CASTS"]);
        Assert.Equal((uint)BpfConfigFlags.TaskStorage, CLayout.Value["ST_CFG_TASK_STORAGE"]);
        Assert.Equal((uint)BpfConfigFlags.Delivery, CLayout.Value["ST_CFG_DELIVERY"]);
        Assert.Equal((uint)BpfConfigFlags.RxDevices, CLayout.Value["ST_CFG_RX_DEVICES"]);
        Assert.Equal(SockTrace.Agent.Bpf.RxDeviceCounters.CacheSlots, CLayout.Value["ST_RX_CACHE_SLOTS"]);
        Assert.Equal(SockTrace.Agent.Bpf.AcceptErrorTable.CacheSlots, CLayout.Value["ST_ACCEPT_ERROR_SLOTS"]);
        Assert.Equal(RecordTypes.FdRace, CLayout.Value["ST_RECORD_FD_RACE"]);
        Assert.Equal(RaceKinds.Dup2Busy, CLayout.Value["ST_RACE_DUP2_BUSY"]);
        Assert.Equal(RaceKinds.InstallOverwrite, CLayout.Value["ST_RACE_INSTALL_OVERWRITE"]);
        Assert.Equal(RaceKinds.DoubleClose, CLayout.Value["ST_RACE_DOUBLE_CLOSE"]);
        Assert.Equal(RxPaths.Loopback, CLayout.Value["ST_RX_PATH_LOOPBACK"]);
        Assert.Equal(RxPaths.Nic, CLayout.Value["ST_RX_PATH_NIC"]);
        Assert.Equal(RxPaths.Virtual, CLayout.Value["ST_RX_PATH_VIRTUAL"]);
    }

    /// <summary>The agent reads recursion_misses out of struct bpf_prog_info by offset.</summary>
    [Fact]
    public void ProgramInfoLayoutMatchesTheKernelHeader()
    {
        Assert.Equal(SockTrace.Agent.Bpf.BpfObject.RecursionMissesOffset, CLayout.Value["offsetof bpf_prog_info.recursion_misses"]);
        Assert.Equal(SockTrace.Agent.Bpf.BpfObject.BpfProgInfoSize, CLayout.Value["sizeof bpf_prog_info"]);
    }

    private static Dictionary<string, long> CompileAndMeasure()
    {
        string header = Path.Combine(RepoRoot(), "bpf", "socktrace.h");
        var lines = new List<string>();
        foreach (var (cField, _, _) in Fields.Select(r => ((string)r[0], r[1], r[2])))
        {
            string[] parts = cField.Split('.');
            lines.Add($"P(\"offsetof {cField}\", offsetof(struct {parts[0]}, {parts[1]}));");
        }
        foreach (var row in Structs)
            lines.Add($"P(\"sizeof {row[0]}\", sizeof(struct {row[0]}));");
        foreach (string constant in new[] { "ST_RECORD_ACCEPT", "ST_RECORD_TYPE_COUNT", "ST_COUNTER_RINGBUF_DROPS", "ST_COUNTER_PENDING_FULL", "ST_COUNTER_PRODUCED", "ST_COUNTER_NO_ENTRY", "ST_COUNTER_RETURN_MISSED", "ST_COUNTER_ERRORS_LOST", "ST_COUNTER_URING_FIXED", "ST_SELF_ACCEPT", "ST_SELF_DUP", "ST_SELF_CLOSE", "ST_RECORD_ESTABLISHED", "ST_RECORD_CLIENT", "ST_CFG_CASTS", "ST_CFG_TASK_STORAGE", "ST_CFG_DELIVERY", "ST_CFG_RX_DEVICES", "ST_RX_CACHE_SLOTS", "ST_ACCEPT_ERROR_SLOTS", "ST_RECORD_FD_RACE", "ST_RACE_DUP2_BUSY", "ST_RACE_INSTALL_OVERWRITE", "ST_RACE_DOUBLE_CLOSE", "ST_RX_PATH_LOOPBACK", "ST_RX_PATH_NIC", "ST_RX_PATH_VIRTUAL" })
            lines.Add($"P(\"{constant}\", {constant});");
        lines.Add("P(\"offsetof bpf_prog_info.recursion_misses\", offsetof(struct bpf_prog_info, recursion_misses));");
        lines.Add("P(\"sizeof bpf_prog_info\", sizeof(struct bpf_prog_info));");

        string dir = Directory.CreateTempSubdirectory("socktrace-layout").FullName;
        string source = Path.Combine(dir, "layout.c");
        File.WriteAllText(source, $$"""
            #include <stddef.h>
            #include <stdio.h>
            #include <linux/types.h>
            #include <linux/bpf.h>
            #include "{{header}}"
            #define P(name, value) printf("%s=%ld\n", name, (long)(value))
            int main(void) { {{string.Join("\n", lines)}} return 0; }
            """);
        string exe = Path.Combine(dir, "layout");
        Run("cc", $"-Wall -Werror -o {exe} {source}");
        return Run(exe, "").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split('='))
            .ToDictionary(p => p[0], p => long.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    private static string Run(string file, string args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        string output = p.StandardOutput.ReadToEnd();
        string error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} {args} failed: {error}");
        return output;
    }

    internal static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "SockTrace.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("SockTrace.sln not found above " + AppContext.BaseDirectory);
    }
}
