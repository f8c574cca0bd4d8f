namespace SockTrace.Reference.Tests.Model;

public sealed class FdTableTests
{
    private static FdTable WithStdio(int limit = 64)
    {
        var table = new FdTable(limit);
        for (int i = 0; i < 3; i++)
            table.Open(new object());
        return table;
    }

    [Fact]
    public void ReservesTheLowestFreeFd()
    {
        var table = WithStdio();
        Assert.Equal(3, table.Open(new object()));
        Assert.Equal(4, table.Reserve());
        Assert.Equal(0, table.Close(3, out _));
        Assert.Equal(3, table.Reserve());
        Assert.Equal(5, table.Reserve());
    }

    [Fact]
    public void AReservedFdIsOpenButHoldsNoFile()
    {
        var table = WithStdio();
        int fd = table.Reserve();
        Assert.True(table.IsOpen(fd));
        Assert.True(table.IsReserved(fd));
        Assert.Null(table.FileAt(fd));
        Assert.Equal(-Errno.EBADF, table.Close(fd, out _));
        table.Unreserve(fd);
        Assert.False(table.IsOpen(fd));
    }

    [Fact]
    public void Dup2OntoAReservedFdIsEbusy()
    {
        var table = WithStdio();
        int reserved = table.Reserve();
        Assert.Equal(-Errno.EBUSY, table.Dup2(0, reserved, dup3: false, out _));
        Assert.Equal(-Errno.EBUSY, table.Dup2(0, reserved, dup3: true, out _));
    }

    [Fact]
    public void Dup2OntoAnInstalledFdReplacesItsFile()
    {
        var table = WithStdio();
        var old = new object();
        int fd = table.Open(old);
        Assert.Equal(fd, table.Dup2(0, fd, dup3: false, out var replaced));
        Assert.Same(old, replaced);
        Assert.Same(table.FileAt(0), table.FileAt(fd));
    }

    [Fact]
    public void Dup2ChecksInTheKernelsOrder()
    {
        var table = WithStdio(limit: 8);
        int reserved = table.Reserve();
        Assert.Equal(-Errno.EBADF, table.Dup2(7, reserved, dup3: false, out _)); // old fd before EBUSY
        Assert.Equal(-Errno.EBADF, table.Dup2(0, 8, dup3: false, out _));        // the limit
        Assert.Equal(-Errno.EINVAL, table.Dup2(1, 1, dup3: true, out _));
        Assert.Equal(1, table.Dup2(1, 1, dup3: false, out _));
        Assert.Equal(-Errno.EBADF, table.Dup2(6, 6, dup3: false, out _));
    }

    [Fact]
    public void NoFreeFdBelowTheLimitIsEmfile()
    {
        var table = WithStdio(limit: 4);
        Assert.Equal(3, table.Reserve());
        Assert.Equal(-Errno.EMFILE, table.Reserve());
        Assert.Equal(-Errno.EBADF, table.Dup2(0, 5, dup3: false, out _));
    }
}
