using System.Buffers.Binary;
using SockTrace.Agent.Events;

namespace SockTrace.Reference.Tests.Support;

/// <summary>
/// Keeps the kernel's records of scenario processes (by comm), so each scenario's records can
/// be aggregated apart from everything else the host does, and, in the order they came
/// between them, the records of connections (ESTABLISHED, CLIENT: no process is in them),
/// which the agent joins to the accept records. Kept until the next <see cref="Take"/>.
/// </summary>
internal sealed class RecordCapture(string comm) : IRecordSink
{
    private const int MaxConnectionRecords = 65536;
    private readonly byte[] _comm = System.Text.Encoding.ASCII.GetBytes(comm);
    // In arrival order; Pid 0 for a connection record.
    private readonly List<(uint Pid, byte[] Record)> _records = [];
    private int _connections;

    public void OnRecord(ReadOnlySpan<byte> record)
    {
        if (record.Length < 16)
            return;
        if (BinaryPrimitives.ReadUInt32LittleEndian(record) is RecordTypes.Established or RecordTypes.Client)
        {
            lock (_records)
            {
                if (_connections++ < MaxConnectionRecords)
                    _records.Add((0, record.ToArray()));
            }
            return;
        }
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
        lock (_records)
            _records.Add((pid, record.ToArray()));
    }

    /// <summary>Waits until <paramref name="expected"/> records of <paramref name="pid"/> are in
    /// (or a timeout), then a little longer so a surplus shows too; returns them with the
    /// connection records since the last call, in the order they came, and forgets those and
    /// the other processes' records that came before.</summary>
    public List<byte[]> Take(uint pid, int expected)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (Count(pid) < expected && DateTime.UtcNow < deadline)
            Thread.Sleep(10);
        Thread.Sleep(150);
        lock (_records)
        {
            var taken = _records.Where(r => r.Pid == pid || r.Pid == 0).Select(r => r.Record).ToList();
            _records.Clear();
            _connections = 0;
            return taken;
        }
    }

    /// <summary>How many of <paramref name="records"/> are a process's: the connection records
    /// are the host's.</summary>
    public static int OfProcesses(IEnumerable<byte[]> records) =>
        records.Count(r => BinaryPrimitives.ReadUInt32LittleEndian(r) is not (RecordTypes.Established or RecordTypes.Client));

    private int Count(uint pid)
    {
        lock (_records)
            return _records.Count(r => r.Pid == pid);
    }
}
