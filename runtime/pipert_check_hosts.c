/* pipert_check_hosts.c — pipert-check's reading of an MPI hostfile, so
 * that DIR/run says in one line what Open MPI says in twenty.
 *
 * Open MPI's syntax: one host a line (a name, an address, user@host),
 * optional KEY=VALUE (slots=N, its synonyms count= and cpu=, max_slots=N),
 * '#' starts a comment.  A host without slots= has as many slots as lines
 * naming it; Open MPI gives a lone line of this machine its cores, and a
 * remote one what the launch finds there (unknown here: not counted
 * against the ranks).  A machine may be listed once with slots= or once
 * per slot, not both; under two names (localhost and 127.0.0.1, or this
 * machine's name) it is still one machine, and Open MPI refuses the file.
 */
#define _DEFAULT_SOURCE 1
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pipert_check.h"

typedef struct host {
	char name[256];
	char machine[256];      /* what it resolves to: "this machine", an address, the name */
	int line;               /* its first line */
	int lines;              /* lines naming this machine */
	long long slots;        /* from slots=, -1: not given */
	int local;
} host;

/* Is addr one of this machine's (loopback, or an interface's)? */
static int addr_is_local(const struct sockaddr *sa, struct ifaddrs *ifs)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		if ((ntohl(a->sin_addr.s_addr) >> 24) == 127)
			return 1;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
			return 1;
	}
	for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != sa->sa_family)
			continue;
		if (sa->sa_family == AF_INET &&
		    ((const struct sockaddr_in *)sa)->sin_addr.s_addr ==
		    ((const struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr)
			return 1;
		if (sa->sa_family == AF_INET6 &&
		    !memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr,
		            &((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16))
			return 1;
	}
	return 0;
}

/* Which machine a host name is: "this machine", its first address, or
 * (unresolvable: an ssh alias, say) the name itself. */
static void resolve(host *h, struct ifaddrs *ifs)
{
	char self[256] = "";
	struct addrinfo hints, *res = NULL;
	const char *name = strchr(h->name, '@') ? strchr(h->name, '@') + 1 : h->name;
	gethostname(self, sizeof self - 1);
	if (!strcmp(name, "localhost") || (self[0] && !strcmp(name, self))) {
		h->local = 1;
	} else {
		memset(&hints, 0, sizeof hints);
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		if (getaddrinfo(name, NULL, &hints, &res) == 0 && res) {
			h->local = addr_is_local(res->ai_addr, ifs);
			if (!h->local) {
				char buf[INET6_ADDRSTRLEN] = "";
				const void *a = res->ai_family == AF_INET
				                ? (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr
				                : (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
				inet_ntop(res->ai_family, a, buf, sizeof buf);
				snprintf(h->machine, sizeof h->machine, "%s", buf);
			}
			freeaddrinfo(res);
		} else {
			snprintf(h->machine, sizeof h->machine, "%s", name);
		}
	}
	if (h->local)
		snprintf(h->machine, sizeof h->machine, "this machine");
}

static int parse_count(const char *s, long long *v)
{
	char *end;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno || end == s || *end || *v < 0 || *v > 1000000 ? -1 : 0;
}

void check_hostfile(const char *path, int nranks, int oversubscribe,
                    void (*report)(int status, const char *fmt, ...))
{
	FILE *f = fopen(path, "r");
	char line[1024];
	host *h = NULL;
	int nh = 0, lineno = 0, bad = 0;
	struct ifaddrs *ifs = NULL;
	if (!f) {
		report(RT_EXIT_USAGE, "cannot read hostfile %s: %s", path, strerror(errno));
		return;
	}
	if (getifaddrs(&ifs) != 0)
		ifs = NULL;
	while (fgets(line, sizeof line, f)) {
		char *tok, *save = NULL;
		host cur;
		lineno++;
		line[strcspn(line, "#\n")] = 0;
		if (!(tok = strtok_r(line, " \t\r", &save)))
			continue;
		memset(&cur, 0, sizeof cur);
		cur.slots = -1;
		cur.line = lineno;
		cur.lines = 1;
		if (strchr(tok, '=') || strlen(tok) >= sizeof cur.name) {
			report(RT_EXIT_USAGE, "hostfile %s, line %d: '%s' is not a host name (a line is "
			       "HOST [slots=N] [max_slots=N])", path, lineno, tok);
			bad = 1;
			continue;
		}
		snprintf(cur.name, sizeof cur.name, "%s", tok);
		while ((tok = strtok_r(NULL, " \t\r", &save))) {
			char *eq = strchr(tok, '=');
			long long v;
			size_t n = eq ? (size_t)(eq - tok) : 0;
			int slots = eq && ((n == 5 && !strncmp(tok, "slots", 5)) ||
			                   (n == 5 && !strncmp(tok, "count", 5)) ||
			                   (n == 3 && !strncmp(tok, "cpu", 3)));
			int known = slots || (eq && ((n == 9 && (!strncmp(tok, "max_slots", 9) ||
			                                          !strncmp(tok, "max-slots", 9) ||
			                                          !strncmp(tok, "slots_max", 9) ||
			                                          !strncmp(tok, "slots-max", 9)))));
			if (!known) {
				report(RT_EXIT_USAGE, "hostfile %s, line %d: '%s' is not understood (a line is "
				       "HOST [slots=N] [max_slots=N])", path, lineno, tok);
				bad = 1;
			} else if (parse_count(eq + 1, &v) != 0) {
				report(RT_EXIT_USAGE, "hostfile %s, line %d: '%s': %.*s takes a number of "
				       "slots", path, lineno, tok, (int)n, tok);
				bad = 1;
			} else if (slots) {
				cur.slots = v;
			}
		}
		resolve(&cur, ifs);
		int j;
		for (j = 0; j < nh && strcmp(h[j].machine, cur.machine); j++)
			;
		if (j < nh) {
			/* another line of a machine already listed */
			if (strcmp(h[j].name, cur.name)) {
				report(RT_EXIT_USAGE, "hostfile %s: '%s' (line %d) and '%s' (line %d) are the "
				       "same machine (%s%s): list it once, with slots=N", path, h[j].name,
				       h[j].line, cur.name, lineno, cur.local ? "" : "both resolve to ",
				       cur.machine);
				bad = 1;
			} else if (h[j].slots >= 0 || cur.slots >= 0) {
				report(RT_EXIT_USAGE, "hostfile %s: '%s' is on lines %d and %d with slots=: "
				       "list a machine once with slots=N, or once per slot without it",
				       path, cur.name, h[j].line, lineno);
				bad = 1;
			}
			h[j].lines++;
			continue;
		}
		host *nhp = realloc(h, (size_t)(nh + 1) * sizeof *h);
		if (!nhp)
			break;
		h = nhp;
		h[nh++] = cur;
	}
	fclose(f);
	if (ifs)
		freeifaddrs(ifs);
	if (!nh && !bad)
		report(RT_EXIT_USAGE, "hostfile %s names no host (one a line: HOST slots=N)", path);
	if (nh && !bad && !oversubscribe) {
		long long total = 0;
		int unknown = 0;
		for (int j = 0; j < nh; j++) {
			if (h[j].slots >= 0)
				total += h[j].slots;
			else if (h[j].lines > 1)
				total += h[j].lines;
			else if (h[j].local)
				total += sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
			else
				unknown = 1;        /* Open MPI asks that machine */
		}
		if (!unknown && total < nranks)
			report(RT_EXIT_USAGE, "hostfile %s gives %lld slot%s for %d ranks: give its "
			       "host%s more slots (slots=N), or let ranks share them with --mpi-arg "
			       "--oversubscribe", path, total, total == 1 ? "" : "s", nranks,
			       nh > 1 ? "s" : "");
	}
	free(h);
}
