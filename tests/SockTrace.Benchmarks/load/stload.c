// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Load generators for scripts/bench.sh. Each prints one line of key=value pairs.
 *
 *   stload accept SECONDS [RATE]   one thread: connect(), accept4(), close both, on
 *                                  127.0.0.1, as fast as one core allows or paced to
 *                                  RATE per second; latency is connect() entry to
 *                                  accept4() return
 *   stload getppid SECONDS         a tight loop of a syscall nothing traces: the cost
 *                                  that any enabled syscalls:* tracepoint adds to
 *                                  every syscall of every task
 *   stload eagain SECONDS THREADS  THREADS threads calling accept4() on an empty
 *                                  non-blocking listener (EAGAIN): one record each
 *   stload close SECONDS           open("/dev/null") and close() in a loop, in a
 *                                  process that never accepts: what the close hook
 *                                  costs every other process on the node
 *   stload dup SECONDS             dup2() onto the same fd in a loop, likewise
 *   stload closes N                N loopback connections opened, then "opened" on
 *                                  stdout; after a line on stdin both ends of each
 *                                  closed in order (FIN, not RST): only the state
 *                                  changes of closing happen after the line
 *
 * The calling thread is pinned to CPU 0 (thread i of eagain to CPU i % CPUs), so the
 * in-kernel cost of the probes lands on the measured core and the agent's reader,
 * when one runs, tends to run on another.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* CPU time of the calling thread: unlike wall time, not inflated when other work on a
 * busy machine preempts the load. Includes the probes, which run in its syscalls. */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu % sysconf(_SC_NPROCESSORS_ONLN), &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity");
}

static int listener(int nonblocking, struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_STREAM | (nonblocking ? SOCK_NONBLOCK : 0), 0);

	if (fd < 0)
		die("socket");
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)addr, sizeof(*addr)) || listen(fd, 4096))
		die("bind/listen");
	if (getsockname(fd, (struct sockaddr *)addr, &len))
		die("getsockname");
	return fd;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int run_accept(double seconds, double rate)
{
	struct sockaddr_in addr;
	int lfd = listener(0, &addr);
	/* RST on close: no TIME_WAIT, so the ephemeral ports never run out. */
	struct linger lin = { .l_onoff = 1, .l_linger = 0 };
	size_t cap = 1 << 20, n = 0;
	uint64_t *lat = malloc(cap * sizeof(*lat));
	uint64_t start, end, deadline, cpu0, cpu, interval = rate > 0 ? (uint64_t)(1e9 / rate) : 0;

	if (!lat)
		die("malloc");
	pin(0);
	cpu0 = thread_cpu_ns();
	start = now_ns();
	deadline = start + (uint64_t)(seconds * 1e9);
	for (;;) {
		uint64_t t0, t1;
		int c, a;

		if (interval) {
			uint64_t due = start + n * interval;
			struct timespec ts = { .tv_sec = due / 1000000000ull, .tv_nsec = due % 1000000000ull };

			if (due >= deadline)
				break;
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		}
		t0 = now_ns();
		if (t0 >= deadline)
			break;
		c = socket(AF_INET, SOCK_STREAM, 0);
		if (c < 0)
			die("socket");
		if (connect(c, (struct sockaddr *)&addr, sizeof(addr)))
			die("connect");
		a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (a < 0)
			die("accept4");
		t1 = now_ns();
		setsockopt(c, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
		close(c);
		close(a);
		if (n == cap) {
			cap *= 2;
			lat = realloc(lat, cap * sizeof(*lat));
			if (!lat)
				die("realloc");
		}
		lat[n++] = t1 - t0;
	}
	end = now_ns();
	cpu = thread_cpu_ns() - cpu0;
	if (n == 0) {
		fprintf(stderr, "no connections\n");
		return 1;
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("mode=accept ops=%zu seconds=%.3f rate=%.0f cpu_seconds=%.3f rate_per_cpu_s=%.0f p50_us=%.2f p99_us=%.2f\n",
	       n, (end - start) / 1e9, n / ((end - start) / 1e9), cpu / 1e9, n / (cpu / 1e9),
	       lat[n / 2] / 1e3, lat[(size_t)(n * 0.99)] / 1e3);
	return 0;
}

/* syscall(): glibc would not cache getppid, but say it plainly. */
static void getppid_once(void)
{
	syscall(SYS_getppid);
}

static void close_once(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("open");
	close(fd);
}

static void dup_once(void)
{
	static int fd = -1;

	if (fd < 0 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		die("open");
	if (dup2(fd, fd + 1) < 0)
		die("dup2");
}

/* One thread on CPU 0 calls op for SECONDS, in batches so the clock is read rarely. */
static int run_calls(const char *mode, void (*op)(void), double seconds)
{
	uint64_t start, end, deadline, cpu0, cpu, n = 0;

	pin(0);
	cpu0 = thread_cpu_ns();
	start = now_ns();
	deadline = start + (uint64_t)(seconds * 1e9);
	do {
		for (int i = 0; i < 4096; i++)
			op();
		n += 4096;
	} while (now_ns() < deadline);
	end = now_ns();
	cpu = thread_cpu_ns() - cpu0;
	printf("mode=%s ops=%llu seconds=%.3f ns_per_call=%.2f cpu_ns_per_call=%.2f\n", mode,
	       (unsigned long long)n, (end - start) / 1e9, (double)(end - start) / n, (double)cpu / n);
	return 0;
}

struct eagain_arg {
	int cpu;
	int fd;
	uint64_t deadline;
	uint64_t calls;
};

static void *eagain_thread(void *p)
{
	struct eagain_arg *arg = p;
	uint64_t n = 0;

	pin(arg->cpu);
	do {
		for (int i = 0; i < 1024; i++)
			if (accept4(arg->fd, NULL, NULL, SOCK_NONBLOCK) >= 0 || errno != EAGAIN)
				die("accept4 did not fail with EAGAIN");
		n += 1024;
	} while (now_ns() < arg->deadline);
	arg->calls = n;
	return NULL;
}

static int run_eagain(double seconds, int threads)
{
	struct sockaddr_in addr;
	int fd = listener(1, &addr);
	pthread_t tid[256];
	struct eagain_arg args[256];
	uint64_t start, end, total = 0;

	if (threads < 1 || threads > 256)
		die("threads");
	start = now_ns();
	for (int i = 0; i < threads; i++) {
		args[i] = (struct eagain_arg){ .cpu = i, .fd = fd, .deadline = start + (uint64_t)(seconds * 1e9) };
		if (pthread_create(&tid[i], NULL, eagain_thread, &args[i]))
			die("pthread_create");
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		total += args[i].calls;
	}
	end = now_ns();
	printf("mode=eagain threads=%d calls=%llu seconds=%.3f rate=%.0f\n", threads,
	       (unsigned long long)total, (end - start) / 1e9, total / ((end - start) / 1e9));
	return 0;
}

static int run_closes(int n)
{
	struct sockaddr_in addr;
	int l = listener(0, &addr);
	int *fds = calloc(2 * (size_t)n, sizeof(int));
	char line[16];

	if (!fds)
		die("calloc");
	pin(0);
	for (int i = 0; i < n; i++) {
		fds[2 * i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[2 * i] < 0 || connect(fds[2 * i], (struct sockaddr *)&addr, sizeof(addr)))
			die("connect");
		if ((fds[2 * i + 1] = accept4(l, NULL, NULL, 0)) < 0)
			die("accept4");
	}
	printf("opened\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		die("stdin");
	for (int i = 0; i < n; i++) {
		close(fds[2 * i]);
		close(fds[2 * i + 1]);
	}
	/* The peers' FIN and ACK, and TIME_WAIT's entry, happen in softirq just after. */
	usleep(200 * 1000);
	printf("mode=closes ops=%d\n", n);
	free(fds);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "accept"))
		return run_accept(atof(argv[2]), argc > 3 ? atof(argv[3]) : 0);
	if (argc >= 3 && !strcmp(argv[1], "getppid"))
		return run_calls("getppid", getppid_once, atof(argv[2]));
	if (argc >= 3 && !strcmp(argv[1], "close"))
		return run_calls("close", close_once, atof(argv[2]));
	if (argc >= 4 && !strcmp(argv[1], "eagain"))
		return run_eagain(atof(argv[2]), atoi(argv[3]));
	if (argc >= 3 && !strcmp(argv[1], "dup"))
		return run_calls("dup", dup_once, atof(argv[2]));
	if (argc >= 3 && !strcmp(argv[1], "closes"))
		return run_closes(atoi(argv[2]));
	fprintf(stderr, "usage: %s accept SECONDS [RATE] | getppid SECONDS | eagain SECONDS THREADS | close SECONDS | dup SECONDS | closes N\n", argv[0]);
	return 2;
}
