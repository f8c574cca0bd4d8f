namespace SockTrace.Reference;

/// <summary>
/// A process's fd table as fs/file.c keeps it: the open-fds bitmap and the file array are
/// separate, so a slot can be open (reserved by alloc_fd()) while holding no file until
/// fd_install() publishes one. Results are the syscall's: an fd, or -errno.
/// </summary>
public sealed class FdTable
{
    private readonly List<bool> _open = [];
    private readonly List<object?> _files = [];

    /// <param name="limit">RLIMIT_NOFILE: alloc_fd() allocates only below it.</param>
    public FdTable(int limit) => Limit = limit;

    public int Limit { get; }

    public bool IsOpen(int fd) => fd >= 0 && fd < _open.Count && _open[fd];

    /// <summary>Open in the bitmap but no file yet: what accept4() holds while it waits.</summary>
    public bool IsReserved(int fd) => IsOpen(fd) && _files[fd] is null;

    public object? FileAt(int fd) => fd >= 0 && fd < _files.Count ? _files[fd] : null;

    /// <summary>alloc_fd(): the lowest fd not open, below the limit, or -EMFILE.</summary>
    public int Reserve()
    {
        for (int fd = 0; fd < Limit; fd++)
        {
            if (IsOpen(fd))
                continue;
            Grow(fd);
            _open[fd] = true;
            return fd;
        }
        return -Errno.EMFILE;
    }

    /// <summary>put_unused_fd(): give back a reservation that will not be installed.</summary>
    public void Unreserve(int fd)
    {
        if (!IsReserved(fd))
            throw new InvalidOperationException($"fd {fd} is not reserved");
        _open[fd] = false;
    }

    /// <summary>fd_install(): publish the file in a reserved slot.</summary>
    public void Install(int fd, object file)
    {
        if (!IsReserved(fd))
            throw new InvalidOperationException($"fd {fd} is not reserved");
        _files[fd] = file;
    }

    /// <summary>Reserve and install at once, as socket() and open() appear to a caller.</summary>
    public int Open(object file)
    {
        int fd = Reserve();
        if (fd >= 0)
            Install(fd, file);
        return fd;
    }

    /// <summary>close(): only a slot holding a file can be closed (file_close_fd() finds none in a reserved one).</summary>
    public int Close(int fd, out object? file)
    {
        file = FileAt(fd);
        if (file is null)
            return -Errno.EBADF;
        _files[fd] = null;
        _open[fd] = false;
        return 0;
    }

    /// <summary>
    /// dup2()/dup3() in the order fs/file.c checks: dup3's flags and old == new, the limit,
    /// the old fd, then do_dup2(): EBUSY when the target is open but has no file (an fd_install
    /// is pending), else whatever the target holds is closed and replaced.
    /// </summary>
    public int Dup2(int oldfd, int newfd, bool dup3, out object? replaced)
    {
        replaced = null;
        if (oldfd == newfd)
        {
            if (dup3)
                return -Errno.EINVAL;
            return FileAt(oldfd) is null ? -Errno.EBADF : newfd;
        }
        if (newfd < 0 || newfd >= Limit)
            return -Errno.EBADF;
        var file = FileAt(oldfd);
        if (file is null)
            return -Errno.EBADF;
        if (IsReserved(newfd))
            return -Errno.EBUSY;
        Grow(newfd);
        replaced = _files[newfd];
        _files[newfd] = file;
        _open[newfd] = true;
        return newfd;
    }

    private void Grow(int fd)
    {
        while (_open.Count <= fd)
        {
            _open.Add(false);
            _files.Add(null);
        }
    }
}
