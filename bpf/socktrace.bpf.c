// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The one object the agent loads: every feature file, one translation unit. Maps the
 * features share (the ring buffer, the counters, the configuration) exist once. Not linked
 * from one object per file: libbpf 1.1's static linker (bpftool gen object) cannot merge
 * the __weak bpf_rdonly_cast kfunc that several of them declare (common.bpf.h).
 */
#include "accept.bpf.c"
#include "delivery.bpf.c"
#include "fdrace.bpf.c"
#include "listen.bpf.c"
#include "rx.bpf.c"
#include "state.bpf.c"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
