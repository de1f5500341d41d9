/* process.execCPUAffinity's cpu list ("0-3,6") read as runc reads it (its toCPUSet/RangeToBits rules):
 * elements are separated by commas; spaces around an element, and empty elements, are ignored; an element
 * is a cpu number or a range "a-b" with a <= b, in plain decimal (no sign, no space inside) of at most
 * 2^32-1. Cpus past CPU_SETSIZE are left out, as the kernel leaves out cpus the host does not have; a list
 * that names no cpu at all is an error (sched_setaffinity would refuse the empty set anyway). */
#include "cpulist.h"

#include <errno.h>

static int is_space(char ch) { return ch == ' ' || (ch >= '\t' && ch <= '\r'); }

/* The decimal number at [*p, end): at least one digit; *p moves past it. */
static int number(const char **p, const char *end, unsigned long long *out) {
  const char *s = *p;
  unsigned long long v = 0;
  if (s == end || *s < '0' || *s > '9') return -EINVAL;
  for (; s < end && *s >= '0' && *s <= '9'; s++) {
    v = v * 10 + (unsigned)(*s - '0');
    if (v > 0xffffffffULL) return -ERANGE;
  }
  *p = s;
  *out = v;
  return 0;
}

/* One element, [s, e) with the spaces around it trimmed: its cpus into *set (none for an empty element);
 * 0 or -errno. */
static int element(const char *s, const char *e, cpu_set_t *set) {
  unsigned long long lo, hi;
  while (s < e && is_space(*s)) s++;
  while (e > s && is_space(e[-1])) e--;
  if (s == e) return 0; /* (extra commas) */
  int r = number(&s, e, &lo);
  if (r < 0) return r;
  hi = lo;
  if (s < e && *s == '-') {
    s++;
    if ((r = number(&s, e, &hi)) < 0) return r;
  }
  if (s != e || lo > hi) return -EINVAL;
  for (unsigned long long k = lo; k <= hi && k < CPU_SETSIZE; k++) CPU_SET((int)k, set);
  return 0;
}

int parse_cpu_list(const char *list, cpu_set_t *set) {
  CPU_ZERO(set);
  for (const char *p = list;; p++) {
    const char *comma = p;
    while (*comma && *comma != ',') comma++;
    int r = element(p, comma, set);
    if (r < 0) return r;
    if (!*comma) break;
    p = comma;
  }
  return CPU_COUNT(set) ? 0 : -EINVAL;
}
