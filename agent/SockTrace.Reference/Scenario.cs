using System.Globalization;
using System.Text.Json;

namespace SockTrace.Reference;

public enum StepOp { Listen, Connect, Accept, Dup2, Dup3, Close, Wait, Send, Recv }

/// <summary>An fd named by an earlier step's result (the fd it returned or, for an accept
/// still waiting, the fd it reserved), or a literal number.</summary>
public readonly record struct FdRef(string? Name, int Number)
{
    public override string ToString() => Name ?? Number.ToString(CultureInfo.InvariantCulture);
}

/// <summary>What a step must return: an fd or count, or an errno.</summary>
public readonly record struct Expectation(int? Ret, int? Errno);

/// <summary>One syscall (or a wait) on one thread. Fields not used by <see cref="Op"/> keep their defaults.</summary>
public sealed record Step(int Index, StepOp Op, string Thread)
{
    public string? Name { get; init; }
    public FdRef Fd { get; init; }
    public FdRef NewFd { get; init; }
    /// <summary>connect: the listen step's name.</summary>
    public string? To { get; init; }
    public int Backlog { get; init; } = 16;
    public bool Blocking { get; init; } = true;
    /// <summary>listen: loopback (127.0.0.1), loopback6 (::1) or any (0.0.0.0).</summary>
    public string Address { get; init; } = "loopback";
    /// <summary>connect: loopback, loopback6, or nic (the host's own non-loopback address).</summary>
    public string Via { get; init; } = "loopback";
    public ushort? Port { get; init; }
    public int Bytes { get; init; }
    public TimeSpan Wait { get; init; }
    public Expectation? Expect { get; init; }
}

/// <summary>
/// A scenario: threads making syscalls in the listed order. A step starts once the one
/// before it has returned or is blocked (an accept waiting for a connection); that rule is
/// what makes a multi-threaded run on the kernel as deterministic as on the model.
/// </summary>
public sealed record Scenario(string Name, string Description, int? Nofile, IReadOnlyList<Step> Steps)
{
    public static readonly string[] Addresses = ["loopback", "loopback6", "any"];
    public static readonly string[] Vias = ["loopback", "loopback6", "nic"];

    public IReadOnlyList<string> Threads => [.. Steps.Where(s => s.Op != StepOp.Wait).Select(s => s.Thread).Distinct()];

    public static Scenario Load(string path)
    {
        try
        {
            return Parse(File.ReadAllText(path), Path.GetFileNameWithoutExtension(path));
        }
        catch (IOException ex)
        {
            throw new ScenarioException($"cannot read scenario {path}: {ex.Message}");
        }
    }

    public static Scenario Parse(string json, string fallbackName = "scenario")
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException ex)
        {
            throw new ScenarioException($"scenario is not valid JSON: {ex.Message}");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (!root.TryGetProperty("steps", out var steps) || steps.ValueKind != JsonValueKind.Array)
                throw new ScenarioException("scenario has no \"steps\" array");
            var list = new List<Step>();
            foreach (var step in steps.EnumerateArray())
                list.Add(ParseStep(list.Count, step));
            return new Scenario(
                Str(root, "name") ?? fallbackName,
                Str(root, "description") ?? "",
                root.TryGetProperty("nofile", out var n) ? n.GetInt32() : null,
                list);
        }
    }

    private static Step ParseStep(int index, JsonElement e)
    {
        string opText = Str(e, "op") ?? throw Bad(index, "has no \"op\"");
        if (!Enum.TryParse<StepOp>(opText, ignoreCase: true, out var op))
            throw Bad(index, $"has unknown op '{opText}'");
        var step = new Step(index, op, Str(e, "thread") ?? "main")
        {
            Name = Str(e, "name"),
            To = Str(e, "to"),
            Fd = Ref(e, op switch { StepOp.Accept => "on", StepOp.Dup2 or StepOp.Dup3 => "old", _ => "fd" }),
            NewFd = Ref(e, "new"),
            Backlog = e.TryGetProperty("backlog", out var b) ? b.GetInt32() : 16,
            Blocking = !e.TryGetProperty("blocking", out var bl) || bl.GetBoolean(),
            Address = Str(e, "address") ?? "loopback",
            Via = Str(e, "via") ?? "loopback",
            Port = e.TryGetProperty("port", out var p) ? p.GetUInt16() : null,
            Bytes = e.TryGetProperty("bytes", out var by) ? by.GetInt32() : 0,
            Wait = TimeSpan.FromMilliseconds(e.TryGetProperty("ms", out var ms) ? ms.GetDouble() : 0),
            Expect = e.TryGetProperty("expect", out var x) ? Expected(index, x) : null,
        };
        Validate(step);
        return step;
    }

    private static void Validate(Step s)
    {
        bool needsFd = s.Op is StepOp.Accept or StepOp.Dup2 or StepOp.Dup3 or StepOp.Close or StepOp.Send or StepOp.Recv;
        if (needsFd && s.Fd == default)
            throw Bad(s.Index, $"({s.Op}) names no fd");
        if (s.Op is StepOp.Dup2 or StepOp.Dup3 && s.NewFd == default)
            throw Bad(s.Index, "has no \"new\" fd");
        if (s.Op == StepOp.Connect && s.To is null)
            throw Bad(s.Index, "(connect) has no \"to\" listener");
        if (!Addresses.Contains(s.Address))
            throw Bad(s.Index, $"has address '{s.Address}', not one of {string.Join(", ", Addresses)}");
        if (!Vias.Contains(s.Via))
            throw Bad(s.Index, $"has via '{s.Via}', not one of {string.Join(", ", Vias)}");
        if (s.Op is StepOp.Send or StepOp.Recv && s.Bytes <= 0)
            throw Bad(s.Index, "moves no bytes");
    }

    private static FdRef Ref(JsonElement e, string property) =>
        !e.TryGetProperty(property, out var v) ? default
        : v.ValueKind == JsonValueKind.Number ? new FdRef(null, v.GetInt32())
        : new FdRef(v.GetString(), -1);

    private static Expectation Expected(int index, JsonElement x) => x.ValueKind switch
    {
        JsonValueKind.Number => new Expectation(x.GetInt32(), null),
        JsonValueKind.String => new Expectation(null, Errno.Parse(x.GetString()!)),
        _ => throw Bad(index, "has an \"expect\" that is neither a number nor an errno name"),
    };

    private static string? Str(JsonElement e, string property) =>
        e.TryGetProperty(property, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static ScenarioException Bad(int index, string what) => new($"step {index} {what}");
}
