namespace SockTrace.Reference;

/// <summary>The errno values the model returns (include/uapi/asm-generic/errno-base.h).</summary>
public static class Errno
{
    public const int EBADF = 9;
    public const int EAGAIN = 11;
    public const int EBUSY = 16;
    public const int EINVAL = 22;
    public const int EMFILE = 24;

    public static string Name(int errno) => errno switch
    {
        EBADF => "ebadf",
        EAGAIN => "eagain",
        EBUSY => "ebusy",
        EINVAL => "einval",
        EMFILE => "emfile",
        _ => "errno_" + errno.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    public static int Parse(string name) => name.ToLowerInvariant() switch
    {
        "ebadf" => EBADF,
        "eagain" => EAGAIN,
        "ebusy" => EBUSY,
        "einval" => EINVAL,
        "emfile" => EMFILE,
        _ => throw new ScenarioException($"unknown errno '{name}'"),
    };
}
