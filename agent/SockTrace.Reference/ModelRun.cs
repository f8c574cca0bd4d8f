namespace SockTrace.Reference;

/// <summary>What one step returned on the model, with its fds resolved to numbers.</summary>
public sealed record StepOutcome(Step Step, int Fd, int NewFd)
{
    /// <summary>The fd or byte count returned, or -errno; null until the step returns.</summary>
    public int? Ret { get; internal set; }
    /// <summary>The step slept (an accept on an empty blocking listener) before returning.</summary>
    public bool Blocked { get; internal set; }
    /// <summary>For an accept that slept: the fd it reserved on entry.</summary>
    public int Reserved { get; internal set; } = -1;
    /// <summary>For a connect: the sleeping accept step it woke, or -1.</summary>
    public int Woke { get; internal set; } = -1;
}

/// <summary>A scenario run on the model: each step's outcome, the records emitted, the ports chosen.</summary>
public sealed class ModelRun
{
    private readonly Scenario _scenario;
    private readonly SocketModel _model;
    private readonly Dictionary<string, ModelThread> _threads = [];
    private readonly Dictionary<string, int> _names = [];
    private readonly Dictionary<string, ListenSocket> _listeners = [];
    private readonly List<StepOutcome> _outcomes = [];
    private readonly List<byte[]> _records = [];
    private readonly ModelOptions _options;

    private ModelRun(Scenario scenario, ModelOptions options, Action<byte[]>? sink)
    {
        _scenario = scenario;
        _options = options;
        _model = new SocketModel(options, scenario.Nofile ?? options.Nofile, r =>
        {
            _records.Add(r);
            sink?.Invoke(r);
        });
        _model.AcceptCompleted += (step, _, ret) =>
        {
            _outcomes[step].Ret = ret;
            _outcomes[^1].Woke = step;
        };
        uint tid = options.Pid;
        foreach (string name in scenario.Threads)
            _threads[name] = new ModelThread(name, tid++);
    }

    public IReadOnlyList<StepOutcome> Outcomes => _outcomes;
    public IReadOnlyList<byte[]> Records => _records;
    /// <summary>Listening port by listen step name.</summary>
    public IReadOnlyDictionary<string, ushort> Ports => _listeners.ToDictionary(l => l.Key, l => l.Value.Port);
    /// <summary>Bytes delivered, by path (loopback, nic).</summary>
    public IReadOnlyDictionary<string, long> Delivered => _model.Delivered;
    public ulong EndNs => _model.Clock.NowNs;

    /// <summary>Runs every step; a step that contradicts its "expect" is a <see cref="ScenarioException"/>.</summary>
    public static ModelRun Execute(Scenario scenario, ModelOptions? options = null, Action<byte[]>? sink = null)
    {
        var run = new ModelRun(scenario, options ?? new ModelOptions(), sink);
        foreach (var step in scenario.Steps)
            run.Run(step);
        foreach (var t in run._threads.Values.Where(t => t.Waiting is not null))
            throw new ScenarioException($"thread '{t.Name}' is still asleep in accept (step {t.Waiting!.StepIndex}) when the scenario ends");
        foreach (var o in run._outcomes)
            CheckExpectation(o);
        return run;
    }

    private void Run(Step step)
    {
        int fd = step.Fd == default ? -1 : Resolve(step, step.Fd);
        int newFd = step.NewFd == default ? -1 : Resolve(step, step.NewFd);
        var outcome = new StepOutcome(step, fd, newFd);
        _outcomes.Add(outcome);
        if (_options.StepTimesNs?.TryGetValue(step.Index, out ulong at) == true)
            _model.Clock.MoveTo(at);
        if (step.Op == StepOp.Wait)
        {
            if (_options.StepTimesNs is null)
                _model.Clock.Advance(step.Wait);
            outcome.Ret = 0;
            return;
        }
        var thread = _threads[step.Thread];
        if (thread.Waiting is not null)
            throw new ScenarioException($"step {step.Index}: thread '{thread.Name}' is asleep in accept (step {thread.Waiting.StepIndex})");
        switch (step.Op)
        {
            case StepOp.Listen:
                if (step.Name is null || _listeners.ContainsKey(step.Name))
                    throw new ScenarioException($"step {step.Index}: a listen needs a unique name");
                var listener = _model.NewListener(step.Name, step.Port ?? (ushort)(_options.BasePort + _listeners.Count), step.Address, step.Backlog, step.Blocking);
                _listeners[step.Name] = listener;
                outcome.Ret = _model.Listen(listener);
                break;
            case StepOp.Connect:
                outcome.Ret = _model.Connect(Listener(step), step.Via);
                break;
            case StepOp.Accept:
                outcome.Ret = _model.Accept(thread, step.Index, fd, out int reserved);
                outcome.Blocked = outcome.Ret is null;
                outcome.Reserved = reserved;
                break;
            case StepOp.Dup2 or StepOp.Dup3:
                outcome.Ret = _model.Dup2(thread, fd, newFd, step.Op == StepOp.Dup3);
                break;
            case StepOp.Close:
                outcome.Ret = _model.Close(thread, fd);
                break;
            case StepOp.Send:
                outcome.Ret = _model.Send(fd, step.Bytes, step.Index);
                break;
            case StepOp.Recv:
                outcome.Ret = _model.Recv(fd, step.Bytes, step.Index);
                break;
        }
        int named = outcome.Ret ?? outcome.Reserved;
        if (step.Name is not null && named >= 0)
            _names[step.Name] = named;
    }

    private ListenSocket Listener(Step step)
    {
        if (!_listeners.TryGetValue(step.To!, out var l))
            throw new ScenarioException($"step {step.Index}: no listener named '{step.To}'");
        bool fits = (l.Address, step.Via) switch
        {
            ("loopback6", "loopback6") => true,
            ("loopback", "loopback") => true,
            ("any", "loopback" or "nic") => true,
            _ => false,
        };
        if (!fits)
            throw new ScenarioException($"step {step.Index}: a listener on '{l.Address}' cannot be reached via '{step.Via}'");
        return l;
    }

    private int Resolve(Step step, FdRef fd)
    {
        if (fd.Name is null)
            return fd.Number;
        return _names.TryGetValue(fd.Name, out int n) ? n
            : throw new ScenarioException($"step {step.Index}: '{fd.Name}' names no fd (no earlier step by that name returned one)");
    }

    private static void CheckExpectation(StepOutcome o)
    {
        if (o.Step.Expect is not { } x)
            return;
        int ret = o.Ret!.Value;
        bool ok = x.Errno is { } e ? ret == -e : ret == x.Ret;
        if (!ok)
            throw new ScenarioException($"step {o.Step.Index} ({o.Step.Op}) returned {Describe(ret)}, the scenario expects {(x.Errno is { } e2 ? Errno.Name(e2) : x.Ret)}");
    }

    public static string Describe(int ret) => ret < 0 ? Errno.Name(-ret) : ret.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
