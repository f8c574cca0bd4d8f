namespace SockTrace.Reference;

/// <summary>A scenario that is malformed, or asks the model for something it does not model.</summary>
public sealed class ScenarioException(string message) : Exception(message);
