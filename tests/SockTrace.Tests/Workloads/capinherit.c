// Runs the agent's capability drop (agent/SockTrace.Agent/Native/capdrop.c, linked in)
// while a thread that already gave up its capabilities has started another thread: a
// thread created after another has dropped inherits the dropped credentials (copy_creds(),
// kernel/cred.c), so the broadcast must not fail on it. The agent meets this when the
// runtime starts a thread from one that has already run the handler.
//
//   capinherit     prints "result ERRNO" (0: the drop succeeded), then one line
//                  "thread TID CapEff CapPrm CapBnd" per thread, in hex, and exits.
// Run as root (it needs CAP_SETPCAP to empty the bounding set).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int socktrace_drop_capabilities(uint64_t keep, int last_cap, int drop_bounding, int signo);

static pthread_barrier_t started;

static int last_cap(void)
{
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "r");
	int cap = -1;

	if (f == NULL || fscanf(f, "%d", &cap) != 1) {
		fprintf(stderr, "capinherit: /proc/sys/kernel/cap_last_cap: %s\n", strerror(errno));
		exit(1);
	}
	fclose(f);
	return cap;
}

static void *idle(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&started);
	for (;;)
		pause();
	return NULL;
}

// Gives up this thread's bounding set and capabilities, then starts the thread that inherits them.
static void *drop_then_spawn(void *arg)
{
	int cap, top = *(int *)arg;
	pthread_t child;
	struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];

	for (cap = 0; cap <= top; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
			fprintf(stderr, "capinherit: PR_CAPBSET_DROP %d: %s\n", cap, strerror(errno));
			exit(1);
		}
	memset(data, 0, sizeof data);
	if (syscall(SYS_capset, &header, data) != 0) {
		fprintf(stderr, "capinherit: capset: %s\n", strerror(errno));
		exit(1);
	}
	if (pthread_create(&child, NULL, idle, NULL) != 0)
		exit(1);
	return idle(NULL);
}

static void print_threads(void)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *entry;

	while (dir != NULL && (entry = readdir(dir)) != NULL) {
		char path[300], line[256];
		unsigned long long eff = 0, prm = 0, bnd = 0;
		FILE *f;

		if (entry->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/self/task/%s/status", entry->d_name);
		f = fopen(path, "r");
		while (f != NULL && fgets(line, sizeof line, f) != NULL) {
			sscanf(line, "CapEff: %llx", &eff);
			sscanf(line, "CapPrm: %llx", &prm);
			sscanf(line, "CapBnd: %llx", &bnd);
		}
		if (f != NULL)
			fclose(f);
		printf("thread %s %016llx %016llx %016llx\n", entry->d_name, eff, prm, bnd);
	}
	if (dir != NULL)
		closedir(dir);
}

int main(void)
{
	int top = last_cap();
	pthread_t dropper;

	// Three waiters: this thread, the one that drops and the one it starts.
	pthread_barrier_init(&started, NULL, 3);
	if (pthread_create(&dropper, NULL, drop_then_spawn, &top) != 0)
		return 1;
	pthread_barrier_wait(&started);
	printf("result %d\n", socktrace_drop_capabilities(0, top, 1, SIGRTMAX - 2));
	print_threads();
	return 0;
}
