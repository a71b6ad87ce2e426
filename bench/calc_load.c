/*
 * calc_load.c: load generator for the postfix calculator protocol (socklab calc).
 *
 *   calc_load HOST PORT CONNS SECONDS WARMUP MODE [SERVER_PID]
 *
 * Opens CONNS connections and, on each, repeats the transaction "3", "4", "+" checking the
 * replies "OK", "OK", "OK 7". MODE is
 *   lockstep   one line in flight per connection: send a line, wait for its reply (what a
 *              student's client does);
 *   pipeline   the three lines of a transaction in one write, then the three replies.
 * One thread and epoll (level-triggered; a read is made only when the socket is readable), so
 * the generator itself costs little CPU.
 * After WARMUP seconds it counts for SECONDS seconds and prints one line:
 *   RESULT tps=… lps=… errors=… cli_pct=… srv_pct=… oth_pct=…
 * where *_pct are CPU use in % of one core over the measured window: this program, the
 * server (all its threads, from /proc/SERVER_PID/stat) and everything else on the machine.
 * If cli_pct is well under 100 while srv_pct is near 100, the server is the bottleneck.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *LINES[3] = {"3\n", "4\n", "+\n"};
static const char *WANT[3] = {"OK", "OK", "OK 7"};
static const char PIPELINED[] = "3\n4\n+\n";

struct conn {
	int fd;
	int step;      /* reply expected next: 0, 1, 2 */
	size_t have;   /* bytes in buf */
	char buf[256]; /* replies are short; a longer line is an error */
};

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double self_cpu(void) {
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds used by a process (all threads), or -1. */
static double proc_cpu(long pid) {
	char path[64], line[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f) return -1;
	size_t n = fread(line, 1, sizeof line - 1, f);
	fclose(f);
	line[n] = 0;
	char *p = strrchr(line, ')');
	if (!p) return -1;
	unsigned long utime = 0, stime = 0;
	/* After ") ": state, then fields 4..13, then utime (14) and stime (15). */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
		return -1;
	return (utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* Busy CPU seconds of the whole machine. */
static double machine_cpu(void) {
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "r");
	if (!f) return -1;
	int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			 &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (got != 8) return -1;
	/* user nice system idle iowait irq softirq steal: all but idle and iowait */
	return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static int send_all(int fd, const char *s, size_t n) {
	ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
	return w == (ssize_t)n ? 0 : -1; /* a few bytes always fit in the send buffer */
}

static int send_next(struct conn *c, int pipeline) {
	if (pipeline) return c->step == 0 ? send_all(c->fd, PIPELINED, sizeof PIPELINED - 1) : 0;
	return send_all(c->fd, LINES[c->step], 2);
}

int main(int argc, char **argv) {
	if (argc < 7) {
		fprintf(stderr, "usage: %s HOST PORT CONNS SECONDS WARMUP lockstep|pipeline [SERVER_PID]\n",
			argv[0]);
		return 2;
	}
	const char *host = argv[1];
	int port = atoi(argv[2]), nconns = atoi(argv[3]);
	double seconds = atof(argv[4]), warmup = atof(argv[5]);
	int pipeline = strcmp(argv[6], "pipeline") == 0;
	long server_pid = argc > 7 ? atol(argv[7]) : 0;
	if (!pipeline && strcmp(argv[6], "lockstep") != 0) {
		fprintf(stderr, "mode must be lockstep or pipeline\n");
		return 2;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "bad IPv4 address %s\n", host);
		return 2;
	}
	int ep = epoll_create1(0);
	struct conn *conns = calloc(nconns, sizeof *conns);
	for (int i = 0; i < nconns; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
			perror("connect");
			return 1;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		conns[i].fd = fd;
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	}
	for (int i = 0; i < nconns; i++) {
		if (send_next(&conns[i], pipeline) < 0) {
			perror("send");
			return 1;
		}
	}
	unsigned long long lines = 0, txns = 0, errors = 0;
	unsigned long long base_lines = 0, base_txns = 0;
	double start = now(), t0 = start + warmup, t1 = t0 + seconds;
	double cpu0 = 0, srv0 = 0, mach0 = 0;
	int measuring = 0;
	struct epoll_event evs[256];
	for (;;) {
		double t = now();
		if (!measuring && t >= t0) {
			measuring = 1;
			base_lines = lines;
			base_txns = txns;
			cpu0 = self_cpu();
			srv0 = server_pid ? proc_cpu(server_pid) : -1;
			mach0 = machine_cpu();
			t0 = t;
			t1 = t0 + seconds;
		}
		if (measuring && t >= t1) break;
		int n = epoll_wait(ep, evs, 256, 50);
		if (n < 0 && errno != EINTR) {
			perror("epoll_wait");
			return 1;
		}
		for (int k = 0; k < n; k++) {
			struct conn *c = evs[k].data.ptr;
			ssize_t r = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
			if (r <= 0) {
				if (r < 0 && errno == EAGAIN) continue;
				fprintf(stderr, "connection closed by the server (%s)\n",
					r == 0 ? "EOF" : strerror(errno));
				return 1;
			}
			c->have += r;
			char *nl;
			while ((nl = memchr(c->buf, '\n', c->have))) {
				size_t len = nl - c->buf;
				if (len != strlen(WANT[c->step]) || memcmp(c->buf, WANT[c->step], len) != 0) {
					if (errors++ < 5)
						fprintf(stderr, "unexpected reply %.*s (wanted %s)\n", (int)len,
							c->buf, WANT[c->step]);
				}
				memmove(c->buf, nl + 1, c->have - len - 1);
				c->have -= len + 1;
				lines++;
				c->step = (c->step + 1) % 3;
				if (c->step == 0) txns++;
				if (send_next(c, pipeline) < 0) {
					perror("send");
					return 1;
				}
			}
			if (c->have == sizeof c->buf) {
				fprintf(stderr, "reply line longer than %zu bytes\n", sizeof c->buf);
				return 1;
			}
		}
	}
	double elapsed = now() - t0;
	double cli = self_cpu() - cpu0;
	double srv = server_pid ? proc_cpu(server_pid) - srv0 : -1;
	double mach = machine_cpu() - mach0;
	double oth = mach - cli - (srv > 0 ? srv : 0);
	printf("RESULT tps=%.0f lps=%.0f errors=%llu cli_pct=%.0f srv_pct=%.0f oth_pct=%.0f\n",
	       (txns - base_txns) / elapsed, (lines - base_lines) / elapsed, errors,
	       100 * cli / elapsed, srv >= 0 ? 100 * srv / elapsed : -1.0,
	       oth > 0 ? 100 * oth / elapsed : 0.0);
	return errors ? 1 : 0;
}
