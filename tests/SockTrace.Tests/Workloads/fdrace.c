// Drives the fd races SockTrace detects, with real syscalls and a deterministic fd
// table (a C process opens no fds behind the test's back, unlike a managed runtime).
//
//   fdrace dup2-busy R   R times: a thread blocks in accept4() holding its reserved
//                        fd; the main thread dup2()s onto exactly that fd (EBUSY).
//   fdrace dup3-busy R   the same with dup3(..., O_CLOEXEC).
//   fdrace reuse K S     K times: another thread closes an accepted fd and this one's
//                        next accept4() returns the same number (a reuse gap, no race);
//                        S times this thread closes it itself first (no reuse gap).
//   fdrace double-close K
//                        accepts once (SockTrace follows the closes of processes that
//                        accept), then K times: another thread closes an fd, then this
//                        one closes the same number and gets EBADF (a double close);
//                        also K times a close of a number this thread itself closed,
//                        and K closes of numbers never opened (neither is one).
//   fdrace threadpool N W  a healthy thread-pool server: this thread accepts, W worker
//                        threads each serve and close a connection; a child process
//                        makes N request/response connections, 8 at a time.
//   fdrace epoll N       a healthy event loop: one thread, epoll, non-blocking accept4()
//                        until EAGAIN, serve, close; a child makes N connections as above.
//   fdrace closeall N    accepts once, closes every number from 3 to 1023 that is not
//                        open, then N times forks a child that accepts once (so that
//                        its closes are judged: it is an accepting process) and closes
//                        fds 3..1023 and exits, as daemons do after fork (one thread
//                        each time).
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
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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
	volatile int go;     /* set once the main thread watches this thread's /proc files */
	int fd;
	int syscall_fd, stat_fd;  /* /proc/self/task/TID/{syscall,stat}, at fd 100 and up */
};

static void *accept_once(void *arg)
{
	struct acceptor *a = arg;

	a->tid = syscall(SYS_gettid);
	while (!a->go)
		usleep(100);
	a->fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
	return NULL;
}

/* An fd at 100 or above: while the acceptor reserves its fd, the main thread must hold no
 * fd of its own below the reservation, or the reservation lands one higher and the lowest
 * free fd no longer points at it. */
static int high_fd(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), high;

	if (fd < 0)
		die(path);
	high = fcntl(fd, F_DUPFD_CLOEXEC, 100);
	if (high < 0)
		die("F_DUPFD");
	close(fd);
	return high;
}

/* Opens the acceptor's /proc files, then lets it call accept4(). */
static void watch(struct acceptor *a)
{
	char path[64];

	while (!a->tid)
		usleep(100);
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", a->tid);
	a->syscall_fd = high_fd(path);
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", a->tid);
	a->stat_fd = high_fd(path);
	a->go = 1;
}

/* True once the thread sleeps inside accept4() (read without opening an fd). */
static int blocked_in_accept(const struct acceptor *a)
{
	char buf[512];
	ssize_t n = pread(a->syscall_fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = 0;
	if (strtol(buf, NULL, 10) != SYS_accept4)
		return 0;
	n = pread(a->stat_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return strstr(buf, ") S ") != NULL;
}

/* The fd a blocked accept4() holds reserved: not open, yet below the lowest free fd
 * (alloc_fd() skips it), or -1. */
static int reserved_fd(void)
{
	int lowest = lowest_free_fd();

	for (int fd = 0; fd < lowest; fd++)
		if (fcntl(fd, F_GETFD) == -1 && errno == EBADF)
			return fd;
	return -1;
}

/* Waits until the acceptor sleeps in accept4() holding its reservation. Asleep in
 * accept4() is not always after the reservation: the call can sleep before it (reclaim
 * on a loaded machine), so both are checked, for at most 10 s. */
static int await_reservation(const struct acceptor *a)
{
	for (int i = 0; i < 10000; i++) {
		int fd;

		if (blocked_in_accept(a) && (fd = reserved_fd()) >= 0)
			return fd;
		usleep(1000);
	}
	die("no reserved fd below the lowest free one");
	return -1;
}

static void dup_busy(int rounds, int use_dup3)
{
	int busy = 0;

	for (int i = 0; i < rounds; i++) {
		struct acceptor a = { .fd = -1 };
		pthread_t t;

		if (pthread_create(&t, NULL, accept_once, &a))
			die("pthread_create");
		watch(&a);
		int reserved = await_reservation(&a);
		int ret = use_dup3 ? dup3(0, reserved, O_CLOEXEC) : dup2(0, reserved);
		if (ret == -1 && errno == EBUSY)
			busy++;
		else
			die("dup onto the reserved fd did not fail with EBUSY");
		int client = connect_client();
		pthread_join(t, NULL);
		if (a.fd != reserved)
			die("accept4 did not return the reserved fd");
		printf("race %d %d\n", a.tid, reserved);
		close(a.fd);
		close(client);
		close(a.syscall_fd);
		close(a.stat_fd);
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

/* Has the closer thread close fd, and waits until it has. */
static void close_elsewhere(struct closer *c, int fd)
{
	pthread_mutex_lock(&c->lock);
	c->fd = fd;
	pthread_cond_broadcast(&c->cond);
	while (c->fd != -1)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
}

static void stop_closer(struct closer *c, pthread_t t)
{
	pthread_mutex_lock(&c->lock);
	c->fd = -2;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(t, NULL);
}

static void reuse(int cross, int same)
{
	struct closer c = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, -1, 0, 0 };
	pthread_t t;
	int observed = 0;

	if (pthread_create(&t, NULL, close_loop, &c))
		die("pthread_create");
	for (int i = 0; i < cross + same; i++) {
		int c1 = connect_client();
		int x = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
		int c2 = connect_client(); /* queued before x is closed, so it cannot take x */

		if (i < cross)
			close_elsewhere(&c, x);
		else
			close(x);
		int y = accept4(listener, NULL, NULL, SOCK_CLOEXEC);

		if (y != x)
			die("accept4 did not return the number just closed");
		if (i < cross) {
			observed++;
			printf("gap %lld\n", now_ns() - c.closed_ns);
		}
		close(y);
		close(c1);
		close(c2);
	}
	stop_closer(&c, t);
	printf("reuse %d\n", observed);
}

/* One accepted connection, closed: makes this process one that accepts. */
static void accept_one(void)
{
	int c = connect_client();
	int a = accept4(listener, NULL, NULL, SOCK_CLOEXEC);

	if (a < 0)
		die("accept4");
	close(a);
	close(c);
}

static void double_close(int rounds)
{
	struct closer c = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, -1, 0, 0 };
	pthread_t t;
	int doubles = 0;

	accept_one();
	if (pthread_create(&t, NULL, close_loop, &c))
		die("pthread_create");
	for (int i = 0; i < rounds; i++) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

		close_elsewhere(&c, fd);
		if (close(fd) != -1 || errno != EBADF)
			die("the second close did not fail with EBADF");
		doubles++;
		printf("race %d %d\n", (int)syscall(SYS_gettid), fd);
	}
	for (int i = 0; i < rounds; i++) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

		close(fd);
		if (close(fd) != -1 || errno != EBADF)
			die("closing twice did not fail with EBADF");
		if (close(900 + i) != -1 || errno != EBADF)
			die("closing a number never opened did not fail with EBADF");
	}
	stop_closer(&c, t);
	printf("doubles %d\n", doubles);
}

/* The client side of the healthy servers, in a child process (as wrk would be): n
 * connections, 8 in flight, each sending a request and reading the one-byte reply
 * until the server closes. */
static pid_t start_clients(int n)
{
	pid_t child = fork();

	if (child < 0)
		die("fork");
	if (child > 0)
		return child;
	int fds[8], started = 0, done = 0;
	char b;

	while (done < n) {
		int batch = n - started < 8 ? n - started : 8;

		for (int i = 0; i < batch; i++, started++)
			fds[i] = connect_client();
		for (int i = 0; i < batch; i++) {
			if (write(fds[i], "q", 1) != 1)
				die("write");
			while (read(fds[i], &b, 1) > 0)
				;
			close(fds[i]);
			done++;
		}
	}
	_exit(0);
}

static void wait_child(pid_t child)
{
	int status;

	if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		die("client process failed");
}

/* Reads the request, answers one byte and closes: what a worker of a thread pool does. */
static void serve(int fd)
{
	char b;

	if (read(fd, &b, 1) != 1 || write(fd, "a", 1) != 1)
		die("serve");
	close(fd);
}

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int queue[64];
	int head, tail, stop;
};

static void *worker(void *arg)
{
	struct pool *p = arg;

	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (p->head == p->tail && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->head == p->tail) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		int fd = p->queue[p->head++ % 64];
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		serve(fd);
	}
}

static void threadpool(int n, int workers)
{
	struct pool p = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, { 0 }, 0, 0, 0 };
	pthread_t t[16];

	if (workers < 1 || workers > 16)
		die("threadpool: 1 to 16 workers");
	for (int i = 0; i < workers; i++)
		if (pthread_create(&t[i], NULL, worker, &p))
			die("pthread_create");
	pid_t clients = start_clients(n);
	for (int i = 0; i < n; i++) {
		int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			die("accept4");
		pthread_mutex_lock(&p.lock);
		while (p.tail - p.head == 64)
			pthread_cond_wait(&p.cond, &p.lock);
		p.queue[p.tail++ % 64] = fd;
		pthread_cond_broadcast(&p.cond);
		pthread_mutex_unlock(&p.lock);
	}
	pthread_mutex_lock(&p.lock);
	p.stop = 1;
	pthread_cond_broadcast(&p.cond);
	pthread_mutex_unlock(&p.lock);
	for (int i = 0; i < workers; i++)
		pthread_join(t[i], NULL);
	wait_child(clients);
	printf("accepted %d\n", n);
}

static void event_loop(int n)
{
	struct epoll_event ev = { .events = EPOLLIN }, ready[16];
	int ep = epoll_create1(EPOLL_CLOEXEC), accepted = 0, served = 0;

	if (ep < 0 || fcntl(listener, F_SETFL, O_NONBLOCK) < 0)
		die("epoll");
	ev.data.fd = listener;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev) < 0)
		die("epoll_ctl");
	pid_t clients = start_clients(n);
	while (served < n) {
		int k = epoll_wait(ep, ready, 16, 5000);

		if (k <= 0)
			die("epoll_wait");
		for (int i = 0; i < k; i++) {
			int fd = ready[i].data.fd;

			if (fd != listener) {
				serve(fd);
				served++;
				continue;
			}
			while ((fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
				accepted++;
				ev.data.fd = fd;
				if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
					die("epoll_ctl");
			}
			if (errno != EAGAIN)
				die("accept4");
		}
	}
	wait_child(clients);
	close(ep);
	printf("accepted %d\n", accepted);
}

static void close_all_after_fork(int n)
{
	accept_one();
	for (int fd = 3; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) == -1)
			close(fd);
	for (int i = 0; i < n; i++) {
		pid_t child = fork();

		if (child < 0)
			die("fork");
		if (child == 0) {
			accept_one();
			for (int fd = 3; fd < 1024; fd++)
				close(fd);
			_exit(0);
		}
		wait_child(child);
	}
	printf("forked %d\n", n);
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
		watch(&a[i]);
		while (!blocked_in_accept(&a[i]))
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
		return fprintf(stderr, "usage: fdrace dup2-busy R | dup3-busy R | reuse K S | double-close K | threadpool N W | epoll N | closeall N | block T\n"), 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(listener, 64) < 0)
		die("listen");
	getsockname(listener, (struct sockaddr *)&addr, &len);
	printf("pid %d\nport %d\n", getpid(), ntohs(addr.sin_port));
	if (!strcmp(argv[1], "dup2-busy") || !strcmp(argv[1], "dup3-busy"))
		dup_busy(atoi(argv[2]), argv[1][3] == '3');
	else if (!strcmp(argv[1], "reuse") && argc == 4)
		reuse(atoi(argv[2]), atoi(argv[3]));
	else if (!strcmp(argv[1], "double-close"))
		double_close(atoi(argv[2]));
	else if (!strcmp(argv[1], "threadpool") && argc == 4)
		threadpool(atoi(argv[2]), atoi(argv[3]));
	else if (!strcmp(argv[1], "epoll"))
		event_loop(atoi(argv[2]));
	else if (!strcmp(argv[1], "closeall"))
		close_all_after_fork(atoi(argv[2]));
	else if (!strcmp(argv[1], "block"))
		block(atoi(argv[2]));
	else
		return fprintf(stderr, "fdrace: unknown mode %s\n", argv[1]), 2;
	return 0;
}
