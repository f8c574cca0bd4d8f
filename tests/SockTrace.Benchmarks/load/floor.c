// Loads each program of floor.bpf.c on its own (one this kernel cannot take is said and
// skipped, not the whole object), attaches it, prints "Attached N", and holds them until
// SIGINT or SIGTERM.
//
//   floor OBJECT
#include <bpf/libbpf.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int quiet(enum libbpf_print_level level, const char *format, va_list args)
{
	(void)level, (void)format, (void)args;
	return 0;
}

/* Loads and attaches the index-th program alone; 1 when attached, 0 when not, -1 past the last. */
static int attach_one(const char *path, int index)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	struct bpf_program *prog, *mine = NULL;
	int i = 0;

	if (!obj) {
		perror("floor: open");
		return -1;
	}
	bpf_object__for_each_program(prog, obj) {
		bpf_program__set_autoload(prog, i == index);
		if (i++ == index)
			mine = prog;
	}
	if (!mine) {
		bpf_object__close(obj);
		return -1;
	}
	if (bpf_object__load(obj) || !bpf_program__attach(mine)) {
		fprintf(stderr, "floor: no %s here\n", bpf_program__section_name(mine));
		bpf_object__close(obj);
		return 0;
	}
	return 1; /* left open: the link lives as long as the process */
}

int main(int argc, char **argv)
{
	int attached = 0, r;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OBJECT\n", argv[0]);
		return 2;
	}
	libbpf_set_print(quiet);
	for (int i = 0; (r = attach_one(argv[1], i)) >= 0; i++)
		attached += r;
	printf("Attached %d\n", attached);
	fflush(stdout);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	while (!stop)
		pause();
	return 0;
}
