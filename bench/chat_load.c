/*
 * chat_load.c: load generator for line-based chat servers (socklab chat, ncat --chat, a
 * Python chat server; an IRC mode is for the next comparison, with ngircd).
 *
 *   chat_load HOST PORT CLIENTS RATE SECONDS WARMUP [irc]
 *
 * Opens CLIENTS connections, registers each (a nickname line, or NICK/USER/JOIN in irc mode),
 * then each client sends RATE messages per second (spread evenly, all in one room) carrying
 * the send time: "m <ns> <client>\n". Every client reads everything; each line that carries a
 * time, from another client, counts as one delivered message, and its latency is now - ns
 * (one clock, one machine). After WARMUP seconds it measures for SECONDS seconds and prints:
 *   RESULT sent=… delivered=… dps=… ontime_dps=… p50_us=… p99_us=… max_us=… errors=…
 * (ontime_dps counts only the messages delivered within 100 ms of being sent.)
 * One thread and epoll; reads are only made on readable sockets and writes never block (a
 * client whose socket is full skips its turn and counts a "skipped" send).
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
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536
#define HIST 2000000 /* latency histogram: 1 µs buckets up to 2 s */
#define ONTIME_US 100000 /* a chat line later than 100 ms is noticeably late */

struct client {
	int fd;
	size_t have;
	char buf[BUF];
};

static unsigned long long hist[HIST + 1];

static long long now_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int connect_to(const char *host, int port) {
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, host, &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* Reads and drops what the ready clients have, for up to MS milliseconds or until client WANT
 * has received something. Returns whether WANT received something. */
static int settle(int ep, struct client *cs, int want, int ms) {
	long long end = now_ns() + (long long)ms * 1000000LL;
	struct epoll_event evs[256];
	char junk[BUF];
	for (;;) {
		long long left = (end - now_ns()) / 1000000;
		int k = epoll_wait(ep, evs, 256, left < 0 ? 0 : (int)left);
		int got = 0;
		for (int e = 0; e < k; e++) {
			int who = (int)evs[e].data.u32;
			if (read(cs[who].fd, junk, sizeof junk) > 0 && who == want)
				got = 1;
		}
		if (got)
			return 1;
		if (k <= 0 && now_ns() >= end)
			return 0;
	}
}

/* The send time of a line "... m <ns> <client>", found by hand (sscanf per line was most of
 * this program's time at 2.5 million lines a second). NULL when the line carries none. */
static char *timed(char *line, char *end, long long *ts) {
	for (char *m = line; (m = memchr(m, 'm', (size_t)(end - m))); m++) {
		if (m + 2 >= end || m[1] != ' ' || (m != line && m[-1] != ' ' && m[-1] != ':'))
			continue;
		char *d = m + 2;
		long long v = 0;
		while (d < end && *d >= '0' && *d <= '9')
			v = v * 10 + (*d++ - '0');
		if (d < end && *d == ' ' && d + 1 < end && d[1] >= '0' && d[1] <= '9' && v > 1000000) {
			*ts = v;
			return m;
		}
	}
	return NULL;
}

static unsigned long long percentile(unsigned long long total, double q) {
	unsigned long long want = (unsigned long long)(q * (double)total), seen = 0;
	for (int i = 0; i <= HIST; i++) {
		seen += hist[i];
		if (seen > want)
			return (unsigned long long)i;
	}
	return HIST;
}

int main(int argc, char **argv) {
	if (argc < 7) {
		fprintf(stderr, "usage: %s HOST PORT[,PORT...] CLIENTS RATE SECONDS WARMUP [irc]\n"
				"  several ports (a cluster): client i connects to the (i mod count)-th\n",
			argv[0]);
		return 2;
	}
	const char *host = argv[1];
	int ports[16], nports = 0, n = atoi(argv[3]);
	for (char *p = argv[2]; *p && nports < 16;) {
		ports[nports++] = atoi(p);
		p = strchr(p, ',');
		if (!p)
			break;
		p++;
	}
	double rate = atof(argv[4]), seconds = atof(argv[5]), warmup = atof(argv[6]);
	int irc = argc > 7 && strcmp(argv[7], "irc") == 0;
	struct rlimit rl = {65536, 65536};
	setrlimit(RLIMIT_NOFILE, &rl);
	struct client *cs = calloc((size_t)n, sizeof *cs);
	int greets = 1;
	int ep = epoll_create1(0);
	for (int i = 0; i < n; i++) {
		cs[i].fd = connect_to(host, ports[i % nports]);
		if (cs[i].fd < 0) {
			fprintf(stderr, "connect %d failed: %s\n", i, strerror(errno));
			return 1;
		}
		char reg[256];
		int len = irc ? snprintf(reg, sizeof reg, "NICK l%d\r\nUSER l%d 0 * :load\r\nJOIN #load\r\n", i, i)
			      : snprintf(reg, sizeof reg, "l%d\n", i);
		if (write(cs[i].fd, reg, (size_t)len) != len) {
			fprintf(stderr, "register %d failed\n", i);
			return 1;
		}
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
		/* Non-blocking after the registration line. */
		int fl = 1;
		ioctl(cs[i].fd, FIONBIO, &fl);
		/* Wait until the server has accepted this client before the next connects, reading
		 * (and dropping) whatever the server sends meanwhile, as a real client would. A
		 * server that greets (socklab, ncat's "<announce>") is waited for, up to 2 s each;
		 * one that does not (the first client hears nothing within 1 s) is paced instead.
		 * ncat 7.93 announces every arrival to everyone with blocking writes: clients that
		 * did not read while the others connected would stall it. */
		if (greets) {
			if (!settle(ep, cs, i, i == 0 ? 1000 : 2000) && i == 0)
				greets = 0;
		} else if (i % 50 == 49) {
			settle(ep, cs, -1, 20);
		}
	}
	settle(ep, cs, -1, 300); /* let registrations settle */
	long long start = now_ns();
	long long t_measure = start + (long long)(warmup * 1e9);
	long long t_end = t_measure + (long long)(seconds * 1e9);
	double interval_ns = 1e9 / (rate * (double)n); /* one send every interval, round robin */
	long long next_send = start;
	int next_client = 0;
	unsigned long long sent = 0, delivered = 0, errors = 0, skipped = 0, lat_total = 0;
	unsigned long long max_us = 0, ontime = 0;
	struct epoll_event evs[1024];
	for (;;) {
		long long now = now_ns();
		if (now >= t_end)
			break;
		while (now >= next_send) {
			struct client *c = &cs[next_client];
			char msg[96];
			int len = irc ? snprintf(msg, sizeof msg, "PRIVMSG #load :m %lld %d\r\n", now_ns(), next_client)
				      : snprintf(msg, sizeof msg, "m %lld %d\n", now_ns(), next_client);
			ssize_t w = send(c->fd, msg, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (w == len) {
				if (now >= t_measure)
					sent++;
			} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				skipped++;
			} else {
				errors++;
			}
			next_client = (next_client + 1) % n;
			next_send += (long long)interval_ns;
			if (interval_ns < 1)
				next_send = now + 1;
		}
		long long wait_ms = (next_send - now_ns()) / 1000000;
		int k = epoll_wait(ep, evs, 1024, wait_ms < 0 ? 0 : (int)(wait_ms > 50 ? 50 : wait_ms));
		for (int e = 0; e < k; e++) {
			struct client *c = &cs[evs[e].data.u32];
			ssize_t r = read(c->fd, c->buf + c->have, BUF - c->have - 1);
			if (r <= 0) {
				if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
					errors++;
					epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				}
				continue;
			}
			c->have += (size_t)r;
			long long t = now_ns();
			char *start_line = c->buf, *nl;
			while ((nl = memchr(start_line, '\n', (size_t)(c->buf + c->have - start_line)))) {
				*nl = 0;
				long long ts = 0;
				char *m = timed(start_line, nl, &ts);
				if (m && ts <= t && t >= t_measure) {
					unsigned long long us = (unsigned long long)((t - ts) / 1000);
					delivered++;
					lat_total++;
					if (us <= ONTIME_US)
						ontime++;
					hist[us > HIST ? HIST : us]++;
					if (us > max_us)
						max_us = us;
				}
				start_line = nl + 1;
			}
			size_t rest = (size_t)(c->buf + c->have - start_line);
			memmove(c->buf, start_line, rest);
			c->have = rest;
			if (c->have >= BUF - 1)
				c->have = 0; /* a line longer than the buffer: drop it */
		}
	}
	printf("RESULT clients=%d rate=%.1f sent=%llu delivered=%llu dps=%.0f ontime_dps=%.0f p50_us=%llu "
	       "p99_us=%llu max_us=%llu skipped=%llu errors=%llu\n",
	       n, rate, sent, delivered, (double)delivered / seconds, (double)ontime / seconds,
	       percentile(lat_total, 0.5),
	       percentile(lat_total, 0.99), max_us, skipped, errors);
	return 0;
}
