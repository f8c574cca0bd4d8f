// Drives the fd races SockTrace detects, with real syscalls and a deterministic fd
// table (a C process opens no fds behind the test's back, unlike a managed runtime).
//
//   fdrace dup2-busy R   R times: a thread blocks in accept4() holding its reserved
//                        fd; the main thread dup2()s onto exactly that fd (EBUSY).
//   fdrace reuse K M W   K times: another thread closes an accepted fd and this one's
//                        next accept4() returns the same number at once; M times the
//                        same but 4 W later. W is the race window in microseconds.
//   fdrace block T       T threads block in accept4() for good; prints "blocked TID"
//                        for each once it sleeps there, then "ready", and waits to be
//                        killed.
// Prints what it observed, one "key value" per line, for the test to compare.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int listener;
static struct sockaddr_in addr;

static void die(const char *what)
{
	fprintf(stderr, "fdrace: %s: %s\n", what, strerror(errno));
	exit(1);
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int connect_client(void)
{
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (c < 0 || connect(c, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("connect");
	return c;
}

/* The lowest free fd: what the next fd-creating call gets (alloc_fd(), fs/file.c). */
static int lowest_free_fd(void)
{
	int fd = dup(0);

	if (fd < 0)
		die("dup");
	close(fd);
	return fd;
}

struct acceptor {
	volatile pid_t tid;
	int fd;
};

static void *accept_once(void *arg)
{
	struct acceptor *a = arg;

	a->tid = syscall(SYS_gettid);
	a->fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
	return NULL;
}

/* True once the thread sleeps inside accept4(): its fd is reserved by then
 * (__sys_accept4_file() calls get_unused_fd_flags() before do_accept() waits). */
static int blocked_in_accept(pid_t tid)
{
	char path[64], buf[64];
	FILE *f;
	long nr = -1;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f))
		nr = strtol(buf, NULL, 10);
	fclose(f);
	if (nr != SYS_accept4)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return strstr(buf, ") S ") != NULL;
}

/* The fd a blocked accept4() holds reserved: not open, yet below the lowest free fd
 * (alloc_fd() skips it). Looked up once the thread sleeps, not before it starts: an fd
 * this thread opens meanwhile (the /proc reads above) can push the reservation up one. */
static int reserved_fd(void)
{
	int lowest = lowest_free_fd();

	for (int fd = 0; fd < lowest; fd++)
		if (fcntl(fd, F_GETFD) == -1 && errno == EBADF)
			return fd;
	die("no reserved fd below the lowest free one");
	return -1;
}

static void dup2_busy(int rounds)
{
	int busy = 0;

	for (int i = 0; i < rounds; i++) {
		struct acceptor a = { 0, -1 };
		pthread_t t;

		if (pthread_create(&t, NULL, accept_once, &a))
			die("pthread_create");
		while (!a.tid || !blocked_in_accept(a.tid))
			usleep(1000);
		int reserved = reserved_fd();
		if (dup2(0, reserved) == -1 && errno == EBUSY)
			busy++;
		else
			die("dup2 onto the reserved fd did not fail with EBUSY");
		int client = connect_client();
		pthread_join(t, NULL);
		if (a.fd != reserved)
			die("accept4 did not return the reserved fd");
		printf("race %d %d\n", a.tid, reserved);
		close(a.fd);
		close(client);
	}
	printf("busy %d\n", busy);
}

struct closer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int fd;              /* to close; -1 when done */
	long long closed_ns;
	pid_t tid;
};

static void *close_loop(void *arg)
{
	struct closer *c = arg;

	c->tid = syscall(SYS_gettid);
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (c->fd == -1)
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->fd == -2)
			break;
		close(c->fd);
		c->closed_ns = now_ns();
		c->fd = -1;
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void reuse(int fast, int slow, long window_us)
{
	struct closer c = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, -1, 0, 0 };
	pthread_t t;
	int observed = 0;

	if (pthread_create(&t, NULL, close_loop, &c))
		die("pthread_create");
	for (int i = 0; i < fast + slow; i++) {
		int c1 = connect_client();
		int x = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
		int c2 = connect_client(); /* queued before x is closed, so it cannot take x */

		pthread_mutex_lock(&c.lock);
		c.fd = x;
		pthread_cond_broadcast(&c.cond);
		while (c.fd != -1)
			pthread_cond_wait(&c.cond, &c.lock);
		pthread_mutex_unlock(&c.lock);
		if (i >= fast)
			usleep(4 * window_us);
		int y = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
		long long gap = now_ns() - c.closed_ns;

		if (y == x && gap <= window_us * 1000) {
			observed++;
			printf("race %d %d\n", (int)syscall(SYS_gettid), y);
		}
		close(y);
		close(c1);
		close(c2);
	}
	pthread_mutex_lock(&c.lock);
	c.fd = -2;
	pthread_cond_broadcast(&c.cond);
	pthread_mutex_unlock(&c.lock);
	pthread_join(t, NULL);
	printf("reuse %d\n", observed);
}

static void block(int threads)
{
	struct acceptor a[64] = { 0 };
	pthread_t t;

	if (threads < 1 || threads > 64)
		die("block: 1 to 64 threads");
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&t, NULL, accept_once, &a[i]))
			die("pthread_create");
		while (!a[i].tid || !blocked_in_accept(a[i].tid))
			usleep(1000);
		printf("blocked %d\n", a[i].tid);
	}
	printf("ready\n");
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	socklen_t len = sizeof(addr);

	if (argc < 3)
		return fprintf(stderr, "usage: fdrace dup2-busy R | reuse K M W | block T\n"), 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(listener, 64) < 0)
		die("listen");
	getsockname(listener, (struct sockaddr *)&addr, &len);
	printf("pid %d\nport %d\n", getpid(), ntohs(addr.sin_port));
	if (!strcmp(argv[1], "dup2-busy"))
		dup2_busy(atoi(argv[2]));
	else if (!strcmp(argv[1], "reuse") && argc == 5)
		reuse(atoi(argv[2]), atoi(argv[3]), atol(argv[4]));
	else if (!strcmp(argv[1], "block"))
		block(atoi(argv[2]));
	else
		return fprintf(stderr, "fdrace: unknown mode %s\n", argv[1]), 2;
	return 0;
}
