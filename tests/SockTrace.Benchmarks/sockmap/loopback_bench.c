// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A loopback TCP stream and ping-pong between two processes, for comparing the kernel's
 * stack with a sockmap redirect (scripts/bench-sockmap.sh runs it in and out of a cgroup
 * with the redirect attached).
 *   loopback_bench stream SECONDS CHUNK   -> "stream bytes=N seconds=S MBps=X"
 *   loopback_bench pingpong COUNT SIZE    -> "pingpong count=N size=M p50_us=A p99_us=B mean_us=C"
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int full(int fd, char *buf, size_t len, int writing)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = writing ? write(fd, buf + done, len - done) : read(fd, buf + done, len - done);

		if (n <= 0)
			return -1;
		done += n;
	}
	return 0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(addr);
	int one = 1, lfd, cfd, sfd;
	pid_t child;

	if (argc != 4 || (strcmp(argv[1], "stream") && strcmp(argv[1], "pingpong"))) {
		fprintf(stderr, "usage: loopback_bench stream SECONDS CHUNK | pingpong COUNT SIZE\n");
		return 2;
	}
	long a = atol(argv[2]), b = atol(argv[3]);
	char *buf = calloc(1, b > 0 ? b : 1);

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (void *)&addr, sizeof(addr)) || listen(lfd, 1) || getsockname(lfd, (void *)&addr, &alen))
		die("listen");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		/* The server process: drain, or echo each message. */
		sfd = accept(lfd, NULL, NULL);
		if (sfd < 0)
			die("accept");
		setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!strcmp(argv[1], "stream")) {
			while (read(sfd, buf, b) > 0)
				;
		} else {
			while (!full(sfd, buf, b, 0))
				if (full(sfd, buf, b, 1))
					break;
		}
		_exit(0);
	}
	close(lfd);
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	if (cfd < 0 || connect(cfd, (void *)&addr, sizeof(addr)))
		die("connect");
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (!strcmp(argv[1], "stream")) {
		double start = now(), end = start + a;
		unsigned long long bytes = 0;

		while (now() < end) {
			if (full(cfd, buf, b, 1))
				die("write");
			bytes += b;
		}
		double secs = now() - start;
		shutdown(cfd, SHUT_WR);
		waitpid(child, NULL, 0);
		secs = now() - start; /* until the server has read it all */
		printf("stream bytes=%llu seconds=%.3f MBps=%.1f\n", bytes, secs, bytes / secs / 1e6);
	} else {
		double *rtt = calloc(a, sizeof(double)), sum = 0;

		for (long i = 0; i < a; i++) {
			double t = now();

			if (full(cfd, buf, b, 1) || full(cfd, buf, b, 0))
				die("pingpong");
			rtt[i] = (now() - t) * 1e6;
			sum += rtt[i];
		}
		shutdown(cfd, SHUT_WR);
		waitpid(child, NULL, 0);
		qsort(rtt, a, sizeof(double), cmp);
		printf("pingpong count=%ld size=%ld p50_us=%.2f p99_us=%.2f mean_us=%.2f\n", a, b, rtt[a / 2], rtt[a * 99 / 100], sum / a);
	}
	return 0;
}
