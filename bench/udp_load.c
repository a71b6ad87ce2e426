/* udp_load.c - closed-loop UDP request/reply load generator for socklab's benchmarks.
 *
 * usage: udp_load -p PORT [-H 127.0.0.1] [-c CONNS] [-d SECS] [-w WARMUP] [-s SIZE] [-f FILE]
 *
 * -f FILE: each request is FILE's bytes (at most 1400; e.g. a valid `socklab rtt` probe, which
 * the reflector answers while it ignores anything else) instead of SIZE bytes of 'x'.
 *
 * CONNS connected UDP sockets (distinct source ports) each keep one SIZE-byte request in
 * flight: send, wait for any reply, count it, send again. A request unanswered for 200 ms
 * counts as lost and is resent. Runs WARMUP + SECS seconds and stops by itself.
 * Prints one line: RESULT rps=... replies=... lost=... secs=... avg_reply_bytes=...
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *file = NULL;
    int port = 0, conns = 32, size = 0;
    double secs = 3, warm = 1;
    int opt;
    while ((opt = getopt(argc, argv, "H:p:c:d:w:s:f:")) != -1) {
        switch (opt) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': conns = atoi(optarg); break;
        case 'd': secs = atof(optarg); break;
        case 'w': warm = atof(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'f': file = optarg; break;
        default: fprintf(stderr, "usage: %s -p PORT [-H host] [-c conns] [-d secs] [-w warmup] [-s size] [-f file]\n", argv[0]); return 2;
        }
    }
    if (port <= 0 || conns <= 0 || conns > 4096 || size < 0 || size > 1400) {
        fprintf(stderr, "udp_load: bad arguments\n");
        return 2;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1) { fprintf(stderr, "udp_load: bad host\n"); return 2; }
    int ep = epoll_create1(0);
    int *fds = calloc(conns, sizeof *fds);
    uint64_t *sent_at = calloc(conns, sizeof *sent_at);
    char req[1400], buf[65536];
    memset(req, 'x', sizeof req);
    if (file) {
        FILE *f = fopen(file, "rb");
        if (!f) { perror(file); return 2; }
        size = (int)fread(req, 1, sizeof req, f);
        fclose(f);
    }
    for (int i = 0; i < conns; i++) {
        fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&dst, sizeof dst) < 0) { perror("socket"); return 1; }
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
    }
    uint64_t start = now_ns();
    uint64_t measure_from = start + (uint64_t)(warm * 1e9);
    uint64_t end = measure_from + (uint64_t)(secs * 1e9);
    uint64_t replies = 0, lost = 0, bytes = 0, refused = 0;
    for (int i = 0; i < conns; i++) { send(fds[i], req, size, 0); sent_at[i] = start; }
    struct epoll_event evs[256];
    for (;;) {
        uint64_t t = now_ns();
        if (t >= end) break;
        int n = epoll_wait(ep, evs, 256, 20);
        t = now_ns();
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            for (;;) {
                ssize_t r = recv(fds[i], buf, sizeof buf, 0);
                if (r < 0) {
                    if (errno == ECONNREFUSED) { refused++; break; }
                    break;
                }
                if (t >= measure_from && t < end) { replies++; bytes += (uint64_t)r; }
                send(fds[i], req, size, 0);
                sent_at[i] = t;
            }
        }
        for (int i = 0; i < conns; i++) {
            if (t - sent_at[i] > 200000000ull) {
                if (t >= measure_from) lost++;
                send(fds[i], req, size, 0);
                sent_at[i] = t;
            }
        }
    }
    if (refused && !replies) { fprintf(stderr, "udp_load: port unreachable\n"); return 1; }
    printf("RESULT rps=%.1f replies=%llu lost=%llu secs=%.2f avg_reply_bytes=%.1f\n",
           replies / secs, (unsigned long long)replies, (unsigned long long)lost, secs,
           replies ? (double)bytes / replies : 0.0);
    return 0;
}
