// Runs a scenario's syscalls on the kernel, one line per step, from stdin:
//
//   nofile N                      RLIMIT_NOFILE for the steps
//   threads N                     worker threads 0..N-1
//   listen  STEP T lo|lo6|any BACKLOG NONBLOCK
//   connect STEP T LISTENSTEP lo|lo6|nic WAKES   WAKES: the accept step this connect
//                                                completes (-1: none), waited for too
//   accept  STEP T FD
//   dup2    STEP T OLD NEW        (dup3 likewise, flags 0)
//   close   STEP T FD
//   send    STEP T FD N           write N bytes
//   recv    STEP T FD N           recv N bytes, MSG_WAITALL
//   wait    STEP MS
//
// Each step starts once the one before it has returned or sleeps in accept4(), and once
// the accept its connection woke has returned (a woken thread may not run at once on a
// busy host), so the order is the scenario's on every run. Prints "pid P", "port STEP
// PORT", and per step "t STEP NS" (when its syscall was entered, on its own thread:
// CLOCK_MONOTONIC, bpf_ktime_get_ns()'s clock, so a busy host's scheduling delays are in
// it) then "r STEP RET ERRNO" once the call returned, and "end". argv[1] is the host's non-loopback IPv4
// address.
//
// The fd table is deterministic: fds 0-2 are the pipes to the test, everything else
// inherited is closed, and the /proc files the dispatcher polls sit at fd 100 and up.
// Nothing here calls close() except a close step: SockTrace pairs close() with later
// accepts (the fd reuse gap) and EBADF closes (double_close), so a stray close would be
// a stray measurement.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#define MAX_STEPS 512
#define MAX_THREADS 8
#define MAX_BYTES 65536

struct cmd {
	char op[16];
	int step, thread;
	long a, b, c, d;
	char addr[8];
};

struct worker {
	pthread_t thread;
	pid_t tid;
	int syscall_fd, stat_fd;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int posted;        /* command index to run, or -1 */
	int done;          /* last command index that returned */
	int quit;
};

static struct cmd cmds[MAX_STEPS];
static int ncmds, nthreads;
static long nofile = -1;
static struct worker workers[MAX_THREADS];
static int ports[MAX_STEPS];
static int step_done[MAX_STEPS];
static const char *nic_addr;
static char buf[MAX_BYTES];
static pthread_mutex_t out = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *what)
{
	fprintf(stderr, "st-scenario: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* When this thread's step entered its syscall: stamped as the last thing before it, so
 * nothing the step does first (printing, socket()) counts as time spent in the call. */
static __thread long long entered_ns;

static void enter(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	entered_ns = ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void started(int step, long long ns)
{
	pthread_mutex_lock(&out);
	printf("t %d %lld\n", step, ns);
	pthread_mutex_unlock(&out);
}

static void result(int step, long ret, int err)
{
	pthread_mutex_lock(&out);
	printf("r %d %ld %d\n", step, ret, ret < 0 ? err : 0);
	pthread_mutex_unlock(&out);
}

/* An fd at 100 or above, opened without close(): close_range() is another syscall. */
static int high_fd(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), high;

	if (fd < 0)
		die(path);
	high = fcntl(fd, F_DUPFD_CLOEXEC, 100);
	if (high < 0)
		die("F_DUPFD");
	syscall(SYS_close_range, fd, fd, 0);
	return high;
}

static int address(const char *kind, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (!strcmp(kind, "lo6")) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		a->sin6_port = htons(port);
		return sizeof(*a);
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;

	a->sin_family = AF_INET;
	a->sin_port = htons(port);
	if (!strcmp(kind, "lo"))
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (!strcmp(kind, "nic"))
		inet_pton(AF_INET, nic_addr, &a->sin_addr);
	else
		a->sin_addr.s_addr = htonl(INADDR_ANY);
	return sizeof(*a);
}

static long run(struct cmd *c)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	enter();
	if (!strcmp(c->op, "listen")) {
		len = address(c->addr, 0, &ss);
		fd = socket(ss.ss_family, SOCK_STREAM | (c->b ? SOCK_NONBLOCK : 0), 0);
		if (fd < 0)
			return -1;
		if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, c->a))
			die("bind/listen");
		getsockname(fd, (struct sockaddr *)&ss, &len);
		ports[c->step] = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
		pthread_mutex_lock(&out);
		printf("port %d %d\n", c->step, ports[c->step]);
		pthread_mutex_unlock(&out);
		return fd;
	}
	if (!strcmp(c->op, "connect")) {
		len = address(c->addr, ports[c->a], &ss);
		fd = socket(ss.ss_family, SOCK_STREAM, 0);
		if (fd < 0)
			return -1;
		enter();
		if (connect(fd, (struct sockaddr *)&ss, len))
			die("connect");
		return fd;
	}
	if (!strcmp(c->op, "accept"))
		return accept4(c->a, NULL, NULL, 0);
	if (!strcmp(c->op, "dup2"))
		return dup2(c->a, c->b);
	if (!strcmp(c->op, "dup3"))
		return dup3(c->a, c->b, 0);
	if (!strcmp(c->op, "close"))
		return close(c->a);
	if (!strcmp(c->op, "send"))
		return write(c->a, buf, c->b);
	if (!strcmp(c->op, "recv"))
		return recv(c->a, buf, c->b, MSG_WAITALL);
	errno = EINVAL;
	return -1;
}

static void *work(void *arg)
{
	struct worker *w = arg;

	w->tid = syscall(SYS_gettid);
	w->syscall_fd = high_fd("/proc/thread-self/syscall");
	w->stat_fd = high_fd("/proc/thread-self/stat");
	pthread_mutex_lock(&w->lock);
	w->done = -1;
	pthread_cond_broadcast(&w->cond);
	for (;;) {
		while (w->posted < 0 && !w->quit)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->quit)
			break;
		int i = w->posted;

		w->posted = -1;
		pthread_mutex_unlock(&w->lock);
		errno = 0;
		long ret = run(&cmds[i]);
		int err = errno;

		started(cmds[i].step, entered_ns);
		result(cmds[i].step, ret, err);
		__atomic_store_n(&step_done[i], 1, __ATOMIC_RELEASE);
		__atomic_store_n(&w->done, i, __ATOMIC_RELEASE);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Asleep in accept4(): its fd is reserved by then (__sys_accept4_file() takes it before
 * do_accept() waits). /proc/PID/syscall names the call only for a task that is not running. */
static int asleep_in_accept(struct worker *w)
{
	char text[512];
	ssize_t n = pread(w->syscall_fd, text, sizeof(text) - 1, 0);
	char *paren;

	if (n <= 0)
		return 0;
	text[n] = 0;
	if (strtol(text, NULL, 10) != SYS_accept4)
		return 0;
	n = pread(w->stat_fd, text, sizeof(text) - 1, 0);
	if (n <= 0)
		return 0;
	text[n] = 0;
	paren = strrchr(text, ')');
	return paren && paren[1] == ' ' && paren[2] == 'S';
}

static void parse(char *line)
{
	struct cmd *c = &cmds[ncmds];
	char op[16];

	if (sscanf(line, "%15s", op) != 1)
		return;
	if (!strcmp(op, "nofile")) {
		sscanf(line, "%*s %ld", &nofile);
		return;
	}
	if (!strcmp(op, "threads")) {
		sscanf(line, "%*s %d", &nthreads);
		return;
	}
	if (ncmds == MAX_STEPS)
		die("too many steps");
	strcpy(c->op, op);
	if (!strcmp(op, "listen"))
		sscanf(line, "%*s %d %d %7s %ld %ld", &c->step, &c->thread, c->addr, &c->a, &c->b);
	else if (!strcmp(op, "connect"))
		sscanf(line, "%*s %d %d %ld %7s %ld", &c->step, &c->thread, &c->a, c->addr, &c->c);
	else if (!strcmp(op, "wait"))
		sscanf(line, "%*s %d %ld", &c->step, &c->a);
	else
		sscanf(line, "%*s %d %d %ld %ld", &c->step, &c->thread, &c->a, &c->b);
	if (c->thread < 0 || c->thread >= MAX_THREADS || c->b > MAX_BYTES)
		die("bad line");
	ncmds++;
}

int main(int argc, char **argv)
{
	char line[256];
	int last[MAX_THREADS];

	if (argc < 2)
		return fprintf(stderr, "usage: st-scenario NIC_ADDRESS < script\n"), 2;
	nic_addr = argv[1];
	syscall(SYS_close_range, 3, ~0U, 0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin))
		parse(line);
	printf("pid %d\n", getpid());
	for (int t = 0; t < nthreads; t++) {
		struct worker *w = &workers[t];

		pthread_mutex_init(&w->lock, NULL);
		pthread_cond_init(&w->cond, NULL);
		w->posted = -1;
		w->done = -2;
		last[t] = -1;
		if (pthread_create(&w->thread, NULL, work, w))
			die("pthread_create");
		pthread_mutex_lock(&w->lock);
		while (w->done == -2)
			pthread_cond_wait(&w->cond, &w->lock);
		pthread_mutex_unlock(&w->lock);
	}
	if (nofile >= 0) {
		struct rlimit r = { nofile, nofile };

		if (setrlimit(RLIMIT_NOFILE, &r))
			die("setrlimit");
	}
	for (int i = 0; i < ncmds; i++) {
		struct cmd *c = &cmds[i];

		if (!strcmp(c->op, "wait")) {
			enter();
			started(c->step, entered_ns);
			usleep(c->a * 1000);
			result(c->step, 0, 0);
			continue;
		}
		struct worker *w = &workers[c->thread];

		pthread_mutex_lock(&w->lock);
		w->posted = i;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
		last[c->thread] = i;
		while (__atomic_load_n(&w->done, __ATOMIC_ACQUIRE) != i && !asleep_in_accept(w))
			usleep(50);
		/* Bounded: when the kernel does not wake that accept, the results say so. */
		for (int n = 0; !strcmp(c->op, "connect") && c->c >= 0 && c->c < ncmds && n < 100000; n++) {
			if (__atomic_load_n(&step_done[c->c], __ATOMIC_ACQUIRE))
				break;
			usleep(50);
		}
	}
	for (int t = 0; t < nthreads; t++) {
		struct worker *w = &workers[t];

		while (__atomic_load_n(&w->done, __ATOMIC_ACQUIRE) != last[t])
			usleep(100);
		pthread_mutex_lock(&w->lock);
		w->quit = 1;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	printf("end\n");
	return 0;
}
