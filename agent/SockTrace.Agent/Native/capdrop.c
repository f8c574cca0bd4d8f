// Drops capabilities in every thread of the process.
//
// Linux credentials are per thread: capset(2) and prctl(PR_CAPBSET_DROP) change only the
// calling thread (kernel/capability.c: "pid must be 0 or the caller's tid"), and a thread
// that still holds them passes them on to every thread it creates later. The .NET runtime
// has a dozen threads before Main runs, so the drop is broadcast the way glibc broadcasts
// setuid() (nptl's setxid signal) and libcap's psx does: a real-time signal to each thread
// of /proc/self/task, whose handler drops that thread's sets, repeated until a pass over
// the task list finds no thread that has not dropped. Only async-signal-safe calls run in
// the handler (raw syscalls).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 8192

static uint64_t s_keep;            // capabilities kept in the permitted and effective sets
static int s_last_cap;             // /proc/sys/kernel/cap_last_cap
static int s_drop_bounding;        // only with CAP_SETPCAP, which PR_CAPBSET_DROP needs
static atomic_int s_acks;          // handlers that have run
static atomic_int s_error;         // first errno a handler met

static int drop_this_thread(void)
{
    // A thread started by one that has already dropped inherits the dropped sets
    // (copy_creds(), kernel/cred.c), CAP_SETPCAP gone: PR_CAPBSET_DROP would fail with EPERM
    // even for a capability already out of its bounding set (cap_prctl_drop() checks
    // CAP_SETPCAP first, security/commoncap.c), so only what is still there is dropped.
    if (s_drop_bounding) {
        for (int cap = 0; cap <= s_last_cap; cap++) {
            if ((s_keep & (1ULL << cap)) || syscall(SYS_prctl, PR_CAPBSET_READ, cap, 0, 0, 0) != 1)
                continue;
            if (syscall(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
                return errno;
        }
    }
    // Ambient capabilities would survive an execve(); EINVAL: a kernel before 4.3 has none.
    if (syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return errno;
    // uid 0 regains the bounding set at execve() unless no_new_privs forbids it
    // (cap_bprm_creds_from_file(), security/commoncap.c).
    if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return errno;
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    data[0].permitted = data[0].effective = (uint32_t)s_keep;
    data[1].permitted = data[1].effective = (uint32_t)(s_keep >> 32);
    if (syscall(SYS_capset, &header, data) != 0)
        return errno;
    return 0;
}

static void on_signal(int signo)
{
    (void)signo;
    int saved = errno;
    int error = drop_this_thread();
    if (error != 0) {
        int none = 0;
        atomic_compare_exchange_strong(&s_error, &none, error);
    }
    atomic_fetch_add(&s_acks, 1);
    errno = saved;
}

static int seen(const pid_t *tids, int count, pid_t tid)
{
    for (int i = 0; i < count; i++)
        if (tids[i] == tid)
            return 1;
    return 0;
}

static int task_exists(pid_t tid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d", tid);
    return access(path, F_OK) == 0;
}

// Returns 0, or the errno of the first failure (ETIMEDOUT: a thread did not answer).
int socktrace_drop_capabilities(uint64_t keep, int last_cap, int drop_bounding, int signo)
{
    static pid_t done[MAX_THREADS];
    int ndone = 0;
    s_keep = keep;
    s_last_cap = last_cap;
    s_drop_bounding = drop_bounding;
    atomic_store(&s_error, 0);

    struct sigaction action, previous;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(signo, &action, &previous) != 0)
        return errno;

    pid_t self = (pid_t)syscall(SYS_gettid);
    pid_t pid = getpid();
    int result = 0;
    for (int added = 1; added && result == 0;) {
        added = 0;
        DIR *dir = opendir("/proc/self/task");
        if (dir == NULL) {
            result = errno;
            break;
        }
        struct dirent *entry;
        while (result == 0 && (entry = readdir(dir)) != NULL) {
            pid_t tid = (pid_t)atoi(entry->d_name);
            if (tid <= 0 || seen(done, ndone, tid))
                continue;
            if (ndone == MAX_THREADS) {
                result = E2BIG;
                break;
            }
            done[ndone++] = tid;
            added = 1;
            if (tid == self) {
                result = drop_this_thread();
                continue;
            }
            int before = atomic_load(&s_acks);
            if (syscall(SYS_tgkill, pid, tid, signo) != 0) {
                if (errno != ESRCH)     // ESRCH: the thread has exited
                    result = errno;
                continue;
            }
            // One thread at a time, up to 2 s each: a thread in uninterruptible sleep runs
            // the handler when it wakes; one that exits meanwhile never will.
            struct timespec pause = { 0, 100000 };
            int waited = 0;
            while (atomic_load(&s_acks) == before && task_exists(tid) && waited++ < 20000)
                nanosleep(&pause, NULL);
            if (atomic_load(&s_acks) == before && task_exists(tid))
                result = ETIMEDOUT;
        }
        closedir(dir);
        if (result == 0)
            result = atomic_load(&s_error);
    }
    sigaction(signo, &previous, NULL);
    return result;
}
