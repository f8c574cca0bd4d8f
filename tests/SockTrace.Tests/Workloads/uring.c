// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// io_uring accepts for the kernel tests (Kernel/IoUringAcceptTests.cs), through liburing.
//
//   uring single N W     N single-shot IORING_OP_ACCEPTs on a 127.0.0.1 listener: the odd
//                        ones find their connection already queued for W ms (a queue
//                        wait), the even ones wait for it (armed first: no EAGAIN)
//   uring multi N        one multishot accept takes N connections, then is cancelled: its
//                        last completion is -ECANCELED; a kernel without multishot accept
//                        (before 5.19) answers -EINVAL at once ("multishot 0")
// Prints "port P", "pid X", then "accepted N" and, for multi, "cancelled 1" or "multishot 0".
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in addr;
static int clients[4096];

static void die(const char *what, int err)
{
	fprintf(stderr, "uring: %s: %s\n", what, strerror(err));
	exit(1);
}

static int client(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)))
		die("connect", errno);
	return fd;
}

struct delayed {
	int index;
	int ms;
};

static void *connect_later(void *p)
{
	struct delayed *d = p;

	usleep(d->ms * 1000);
	clients[d->index] = client();
	return NULL;
}

static int complete(struct io_uring *ring, unsigned *flags)
{
	struct io_uring_cqe *cqe;
	int res, err = io_uring_wait_cqe(ring, &cqe);

	if (err)
		die("io_uring_wait_cqe", -err);
	res = cqe->res;
	*flags = cqe->flags;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

static void submit(struct io_uring *ring)
{
	int err = io_uring_submit(ring);

	if (err < 0)
		die("io_uring_submit", -err);
}

static void single(struct io_uring *ring, int listener, int n, int wait_ms)
{
	int accepted = 0;

	for (int i = 0; i < n; i++) {
		struct delayed d = { .index = i, .ms = 50 };
		pthread_t t;
		unsigned flags;
		int fd;

		if (i % 2) {
			clients[i] = client();
			usleep(wait_ms * 1000);
		} else if (pthread_create(&t, NULL, connect_later, &d)) {
			die("pthread_create", errno);
		}
		io_uring_prep_accept(io_uring_get_sqe(ring), listener, NULL, NULL, SOCK_CLOEXEC);
		submit(ring);
		fd = complete(ring, &flags);
		if (fd < 0)
			die("accept", -fd);
		accepted++;
		if (!(i % 2))
			pthread_join(t, NULL);
		close(fd);
	}
	printf("accepted %d\n", accepted);
}

static void multi(struct io_uring *ring, int listener, int n)
{
	int accepted = 0, cancelled = 0;
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	unsigned flags;

	io_uring_prep_multishot_accept(sqe, listener, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, 1);
	submit(ring);
	for (int i = 0; i < n; i++) {
		int fd;

		clients[i] = client();
		fd = complete(ring, &flags);
		if (i == 0 && fd == -EINVAL) {
			printf("accepted 0\nmultishot 0\n");
			return;
		}
		if (fd < 0)
			die("multishot accept", -fd);
		if (!(flags & IORING_CQE_F_MORE))
			die("multishot accept ended", 0);
		accepted++;
		close(fd);
	}
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_cancel64(sqe, 1, 0);
	io_uring_sqe_set_data64(sqe, 2);
	submit(ring);
	for (int seen = 0; seen < 2; seen++) {
		struct io_uring_cqe *cqe;
		int err = io_uring_wait_cqe(ring, &cqe);

		if (err)
			die("io_uring_wait_cqe", -err);
		if (cqe->user_data == 1 && cqe->res == -ECANCELED)
			cancelled++;
		io_uring_cqe_seen(ring, cqe);
	}
	printf("accepted %d\ncancelled %d\n", accepted, cancelled);
}

int main(int argc, char **argv)
{
	socklen_t len = sizeof(addr);
	struct io_uring ring;
	int listener, err, n;

	if (argc < 3 || (strcmp(argv[1], "single") && strcmp(argv[1], "multi")) || (n = atoi(argv[2])) < 1 || n > 4096)
		return fprintf(stderr, "usage: uring single N W | multi N\n"), 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof(addr)) || listen(listener, 4096) ||
	    getsockname(listener, (struct sockaddr *)&addr, &len))
		die("listener", errno);
	if ((err = io_uring_queue_init(8, &ring, 0)))
		die("io_uring_queue_init", -err);
	printf("port %d\npid %d\n", ntohs(addr.sin_port), getpid());
	if (!strcmp(argv[1], "single"))
		single(&ring, listener, n, argc > 3 ? atoi(argv[3]) : 0);
	else
		multi(&ring, listener, n);
	io_uring_queue_exit(&ring);
	for (int i = 0; i < n; i++)
		close(clients[i]);
	return 0;
}
