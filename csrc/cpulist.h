/* process.execCPUAffinity's cpu list; see cpulist.c. Shared by the C helper's files, never seen by Python. */
#ifndef OCIRUN_CPULIST_H
#define OCIRUN_CPULIST_H
#include <sched.h>

/* "0-3,6" into *set: 0, or -EINVAL (not a cpu list, or no cpu in it) or -ERANGE (a number past 2^32-1). */
int parse_cpu_list(const char *list, cpu_set_t *set);
#endif
