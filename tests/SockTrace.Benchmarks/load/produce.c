// Drives produce.bpf.c: writes accept records into a running agent's ring buffer at a
// paced rate, from a BPF loop run with BPF_PROG_TEST_RUN, and reports how many the
// kernel took and how many it refused because the ring was full.
//
//   produce OBJECT MAP_ID SECONDS RATE LPORT
//
// MAP_ID is the id of the agent's ring buffer (bpftool map show). Prints one line:
// "written=N refused=M seconds=S rate=R" (R: records written per second of wall time).
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct produce_args {
	__u32 records;
	__u16 lport;
	__u16 _pad;
};

static void die(const char *what, int err)
{
	fprintf(stderr, "produce: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: produce OBJECT MAP_ID SECONDS RATE LPORT\n");
		return 2;
	}
	const char *path = argv[1];
	__u32 map_id = strtoul(argv[2], NULL, 10);
	double seconds = atof(argv[3]);
	long rate = atol(argv[4]);
	struct produce_args args = { .lport = (__u16)atoi(argv[5]) };
	const double tick = 0.01;

	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	if (!obj)
		die("open", errno);
	int ring = bpf_map_get_fd_by_id(map_id);
	if (ring < 0)
		die("the agent's ring buffer", errno);
	int err = bpf_map__reuse_fd(bpf_object__find_map_by_name(obj, "st_events"), ring);
	if (err)
		die("reuse the ring buffer", err);
	err = bpf_object__load(obj);
	if (err)
		die("load", err);
	int prog = bpf_program__fd(bpf_object__find_program_by_name(obj, "produce"));

	/* One batch per 10 ms tick, on an absolute schedule: a batch that runs late is not
	 * made up for by a larger one, so the rate reported is the rate reached. */
	args.records = rate * tick;
	unsigned long long written = 0, refused = 0;
	double start = now_s(), next = start;
	while (now_s() - start < seconds) {
		LIBBPF_OPTS(bpf_test_run_opts, run, .ctx_in = &args, .ctx_size_in = sizeof(args));
		err = bpf_prog_test_run_opts(prog, &run);
		if (err)
			die("BPF_PROG_TEST_RUN", err);
		written += run.retval;
		refused += args.records - run.retval;
		next += tick;
		double wait = next - now_s();
		if (wait > 0)
			usleep(wait * 1e6);
	}
	double elapsed = now_s() - start;

	printf("written=%llu refused=%llu seconds=%.3f rate=%.0f\n", written, refused, elapsed, written / elapsed);
	bpf_object__close(obj);
	return 0;
}
