namespace SockTrace.Agent.Events;

/// <summary>Hands each accept record to several handlers, in order.</summary>
public sealed class AcceptHandlers(params IAcceptHandler[] handlers) : IAcceptHandler
{
    public void OnAccept(in AcceptRecord record)
    {
        foreach (var handler in handlers)
            handler.OnAccept(in record);
    }
}
