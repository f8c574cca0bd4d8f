using System.Buffers.Binary;
using SockTrace.Agent.Events;

namespace SockTrace.Reference.Tests.Support;

/// <summary>
/// Keeps the kernel's records of scenario processes (by comm), grouped by pid, so each
/// scenario's records can be aggregated apart from everything else the host does.
/// </summary>
internal sealed class RecordCapture(string comm) : IRecordSink
{
    private readonly byte[] _comm = System.Text.Encoding.ASCII.GetBytes(comm);
    private readonly Dictionary<uint, List<byte[]>> _byPid = [];

    public void OnRecord(ReadOnlySpan<byte> record)
    {
        if (record.Length < 16)
            return;
        int commOffset = BinaryPrimitives.ReadUInt32LittleEndian(record) switch
        {
            RecordTypes.Accept => 80,
            RecordTypes.FdRace => 56,
            _ => -1,
        };
        if (commOffset < 0 || record.Length < commOffset + 16)
            return;
        var recordComm = record.Slice(commOffset, 16);
        if (!recordComm.StartsWith(_comm) || recordComm[_comm.Length] != 0)
            return;
        uint pid = BinaryPrimitives.ReadUInt32LittleEndian(record[8..]);
        lock (_byPid)
        {
            if (!_byPid.TryGetValue(pid, out var list))
                _byPid[pid] = list = [];
            list.Add(record.ToArray());
        }
    }

    /// <summary>Waits until <paramref name="expected"/> records of <paramref name="pid"/> are in
    /// (or a timeout), then a little longer so a surplus shows too.</summary>
    public List<byte[]> Take(uint pid, int expected)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (Count(pid) < expected && DateTime.UtcNow < deadline)
            Thread.Sleep(10);
        Thread.Sleep(150);
        lock (_byPid)
        {
            _byPid.Remove(pid, out var list);
            return list ?? [];
        }
    }

    private int Count(uint pid)
    {
        lock (_byPid)
            return _byPid.TryGetValue(pid, out var list) ? list.Count : 0;
    }
}
