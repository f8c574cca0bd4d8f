// One process of the churn soak (scripts/soak-churn.sh): named NAME (its comm), it listens on
// LISTENERS ports from PORT_BASE on 127.0.0.1, makes CONNECTIONS connect/accept/close cycles
// spread over them round robin and paced to take SECONDS, closes and reopens every listener
// half way, and prints how many it accepted on each port ("PORT COUNT" lines).
// The client closes with RST (SO_LINGER 0): no TIME_WAIT piles up over a million connections.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTENERS 64

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int listen_on(int port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		die("socket");
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(fd, 128))
		die("bind/listen");
	return fd;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	long count[MAX_LISTENERS] = { 0 }, connections, i;
	int fds[MAX_LISTENERS], listeners, base, l;
	double seconds, start;

	if (argc != 6) {
		fprintf(stderr, "usage: %s NAME PORT_BASE LISTENERS CONNECTIONS SECONDS\n", argv[0]);
		return 2;
	}
	prctl(PR_SET_NAME, argv[1]);
	base = atoi(argv[2]);
	listeners = atoi(argv[3]);
	connections = atol(argv[4]);
	seconds = atof(argv[5]);
	if (listeners < 1 || listeners > MAX_LISTENERS)
		return 2;
	for (l = 0; l < listeners; l++)
		fds[l] = listen_on(base + l);
	start = now();
	for (i = 0; i < connections; i++) {
		struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		double wait = start + seconds * i / connections - now();
		int c, a;

		if (i == connections / 2)
			for (l = 0; l < listeners; l++) {
				close(fds[l]);
				fds[l] = listen_on(base + l);
			}
		if (wait > 0)
			usleep((useconds_t)(wait * 1e6));
		l = i % listeners;
		addr.sin_port = htons(base + l);
		c = socket(AF_INET, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&addr, sizeof(addr)))
			die("connect");
		a = accept4(fds[l], NULL, NULL, 0);
		if (a < 0)
			die("accept4");
		setsockopt(c, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		close(c);
		close(a);
		count[l]++;
	}
	for (l = 0; l < listeners; l++)
		printf("%d %ld\n", base + l, count[l]);
	return 0;
}
