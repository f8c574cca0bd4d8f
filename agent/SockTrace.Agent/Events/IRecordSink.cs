namespace SockTrace.Agent.Events;

/// <summary>Receives raw records; the span is valid only for the duration of the call.</summary>
public interface IRecordSink
{
    void OnRecord(ReadOnlySpan<byte> record);
}
