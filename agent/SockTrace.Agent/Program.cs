using SockTrace.Agent.Bpf;
using SockTrace.Agent.Hosting;

try
{
    var commandLine = AgentCommandLine.Parse(args);
    if (commandLine.Command == AgentCommand.Help)
    {
        Console.WriteLine(AgentCommandLine.HelpText());
        return ExitCodes.Ok;
    }
    if (commandLine.Command == AgentCommand.Check)
        return CheckCommand.Run(AgentHost.Options(commandLine), Console.Out);
    await using var app = AgentHost.Build(commandLine);
    await app.RunAsync();
    return Environment.ExitCode;
}
catch (StartupException ex)
{
    return Fail(ex.Message, ex.ExitCode);
}
catch (BpfException ex)
{
    if (!string.IsNullOrWhiteSpace(ex.LibbpfLog))
        Console.Error.WriteLine(ex.LibbpfLog.TrimEnd());
    return Fail(ex.Message, ExitCodes.BpfFailure);
}
catch (IOException ex) when (ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException || ex.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
{
    return Fail($"cannot serve metrics: {ex.Message}", ExitCodes.Endpoint);
}
catch (Exception ex)
{
    return Fail($"unexpected error: {ex.GetType().Name}: {ex.Message}", ExitCodes.Failure);
}

static int Fail(string message, int exitCode)
{
    Console.Error.WriteLine($"socktrace: {message}");
    return exitCode;
}
