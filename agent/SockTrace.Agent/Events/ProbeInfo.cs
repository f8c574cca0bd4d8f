namespace SockTrace.Agent.Events;

/// <summary>A hook and the mechanism it is attached with (tracepoint, tp_btf, kprobe, fentry).</summary>
public readonly record struct ProbeInfo(string Hook, string Mode);
