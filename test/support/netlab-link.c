/*
 * The lab's link emulator (compiled by test/support/netlab.ts with `cc`; see its header).
 *
 * Usage: netlab-link <tun name>=<IPv4 address> ...   (one per host, in the root namespace)
 * Opens one TUN device per host (IFF_TUN | IFF_NO_PI), prints "ready", then forwards IPv4
 * packets between them as a star: a packet from host a to host b crosses a's uplink, then b's
 * downlink. Each of the 2 × hosts link directions has, in order: UDP blocking, random or burst
 * loss (Gilbert-Elliott with loss only in the bad state), a rate cap with a drop-tail queue
 * bounded in milliseconds of backlog, then a fixed delay plus uniform jitter (order kept, as
 * on one path through the Internet).
 *
 * Control, one line each on stdin, answered with one line on stdout:
 *   set <host index> <up|down|both> [delay=ms] [jitter=ms] [loss=percent] [burst=mean burst
 *       length in packets, 1 = independent losses] [rate=kbit/s, 0 = unlimited] [queue=ms]
 *       [blockudp=0|1]                                      -> "ok" | "error <why>"
 *   stats                                                   -> "stats <JSON>"
 *   nat <host index> <public IPv4>                          -> "ok" | "error <why>"
 *       The host sits behind a 1:1 NAT (as a cloud VM behind its public address): what it sends
 *       leaves with the public address as source, what others send to the public address
 *       reaches it, and its own address can no longer be reached from the other hosts.
 * End of stdin ends the process (so a crashed parent never leaves it behind).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define MAX_HOSTS 16
#define MTU 2048

struct packet {
  struct packet *next;
  uint64_t due; /* ns, monotonic: when it leaves the direction it is queued in */
  int to;
  int len;
  unsigned char data[];
};

struct direction {
  double delay_ms, jitter_ms, loss, burst, rate_kbps, queue_ms;
  int block_udp;
  int bad;              /* Gilbert-Elliott state */
  uint64_t busy_until;  /* when the rate limiter has sent what it holds */
  uint64_t last_due;    /* keeps packets in order despite jitter */
  struct packet *head, *tail;
  uint64_t in, out, bytes_out, lost, queue_drops, udp_drops;
};

struct host {
  int fd;
  uint32_t addr;
  uint32_t public_addr; /* network order; 0 = no NAT */
  char name[IFNAMSIZ];
  struct direction up, down;
};

static struct host hosts[MAX_HOSTS];
static int host_count;
static uint64_t unroutable;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double uniform(void) { return drand48(); }

static int open_tun(const char *name) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void drop(struct packet *p) { free(p); }

/* RFC 1624: a 16-bit one's-complement checksum updated for a 32-bit field changing. */
static void checksum_replace(unsigned char *at, uint32_t from, uint32_t to) {
  uint16_t sum;
  memcpy(&sum, at, 2);
  uint32_t acc = (uint16_t)~ntohs(sum);
  acc += (uint16_t)~(ntohl(from) >> 16) + (uint16_t)~(ntohl(from) & 0xffff);
  acc += (ntohl(to) >> 16) + (ntohl(to) & 0xffff);
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  sum = htons((uint16_t)~acc);
  memcpy(at, &sum, 2);
}

/* Rewrites the IPv4 source (offset 12) or destination (16), fixing the IP, TCP and UDP checksums. */
static void rewrite_address(unsigned char *pkt, int len, int offset, uint32_t to) {
  uint32_t from;
  memcpy(&from, pkt + offset, 4);
  memcpy(pkt + offset, &to, 4);
  checksum_replace(pkt + 10, from, to);
  int ihl = (pkt[0] & 0x0f) * 4;
  int first_fragment = ((pkt[6] & 0x1f) | pkt[7]) == 0;
  if (!first_fragment) return;
  if (pkt[9] == 6 && len >= ihl + 18) checksum_replace(pkt + ihl + 16, from, to);
  if (pkt[9] == 17 && len >= ihl + 8 && (pkt[ihl + 6] | pkt[ihl + 7])) checksum_replace(pkt + ihl + 6, from, to);
}

/* A packet arrives at a direction at time `at`: dropped, or queued with the time it leaves. */
static void enter(struct direction *d, struct packet *p, uint64_t at) {
  d->in++;
  if (d->block_udp && p->len >= 20 && p->data[9] == 17) {
    d->udp_drops++;
    return drop(p);
  }
  int lost;
  if (d->burst > 1.0 && d->loss > 0) {
    double leave_bad = 1.0 / d->burst;
    double enter_bad = d->loss >= 1.0 ? 1.0 : d->loss * leave_bad / (1.0 - d->loss);
    if (d->bad) d->bad = uniform() >= leave_bad;
    else d->bad = uniform() < enter_bad;
    lost = d->bad;
  } else {
    lost = d->loss > 0 && uniform() < d->loss;
  }
  if (lost) {
    d->lost++;
    return drop(p);
  }
  uint64_t leave = at;
  if (d->rate_kbps > 0) {
    uint64_t start = d->busy_until > at ? d->busy_until : at;
    if ((double)(start - at) > d->queue_ms * 1e6) {
      d->queue_drops++;
      return drop(p);
    }
    d->busy_until = start + (uint64_t)((double)p->len * 8.0 / (d->rate_kbps * 1000.0) * 1e9);
    leave = d->busy_until;
  }
  double extra_ms = d->delay_ms + (d->jitter_ms > 0 ? (uniform() * 2.0 - 1.0) * d->jitter_ms : 0);
  if (extra_ms < 0) extra_ms = 0;
  p->due = leave + (uint64_t)(extra_ms * 1e6);
  if (p->due < d->last_due) p->due = d->last_due;
  d->last_due = p->due;
  p->next = NULL;
  if (d->tail) d->tail->next = p;
  else d->head = p;
  d->tail = p;
}

static struct packet *take(struct direction *d) {
  struct packet *p = d->head;
  d->head = p->next;
  if (!d->head) d->tail = NULL;
  d->out++;
  d->bytes_out += (uint64_t)p->len;
  return p;
}

static int set_param(struct direction *d, const char *key, double v) {
  if (!strcmp(key, "delay")) d->delay_ms = v;
  else if (!strcmp(key, "jitter")) d->jitter_ms = v;
  else if (!strcmp(key, "loss")) d->loss = v / 100.0;
  else if (!strcmp(key, "burst")) d->burst = v;
  else if (!strcmp(key, "rate")) d->rate_kbps = v;
  else if (!strcmp(key, "queue")) d->queue_ms = v;
  else if (!strcmp(key, "blockudp")) d->block_udp = v != 0;
  else return -1;
  return 0;
}

static void print_direction(const struct direction *d) {
  printf("{\"in\":%llu,\"out\":%llu,\"bytesOut\":%llu,\"lost\":%llu,\"queueDrops\":%llu,\"udpDrops\":%llu,\"queued\":%d}",
         (unsigned long long)d->in, (unsigned long long)d->out, (unsigned long long)d->bytes_out,
         (unsigned long long)d->lost, (unsigned long long)d->queue_drops, (unsigned long long)d->udp_drops,
         d->head != NULL);
}

static void command(char *line) {
  char *save = NULL;
  char *verb = strtok_r(line, " \t\r\n", &save);
  if (!verb) return;
  if (!strcmp(verb, "stats")) {
    printf("stats {\"unroutable\":%llu,\"hosts\":[", (unsigned long long)unroutable);
    for (int i = 0; i < host_count; i++) {
      printf("%s{\"up\":", i ? "," : "");
      print_direction(&hosts[i].up);
      printf(",\"down\":");
      print_direction(&hosts[i].down);
      printf("}");
    }
    printf("]}\n");
    fflush(stdout);
    return;
  }
  if (!strcmp(verb, "nat")) {
    char *index = strtok_r(NULL, " \t\r\n", &save);
    char *address = strtok_r(NULL, " \t\r\n", &save);
    int h = index ? atoi(index) : -1;
    struct in_addr a;
    if (h < 0 || h >= host_count || !address || inet_pton(AF_INET, address, &a) != 1) {
      printf("error bad host or address\n");
    } else {
      hosts[h].public_addr = a.s_addr;
      printf("ok\n");
    }
    fflush(stdout);
    return;
  }
  if (strcmp(verb, "set")) {
    printf("error unknown command\n");
    fflush(stdout);
    return;
  }
  char *index = strtok_r(NULL, " \t\r\n", &save);
  char *which = strtok_r(NULL, " \t\r\n", &save);
  int h = index ? atoi(index) : -1;
  if (h < 0 || h >= host_count || !which) {
    printf("error bad host or direction\n");
    fflush(stdout);
    return;
  }
  int up = !strcmp(which, "up") || !strcmp(which, "both");
  int down = !strcmp(which, "down") || !strcmp(which, "both");
  if (!up && !down) {
    printf("error bad direction\n");
    fflush(stdout);
    return;
  }
  /* Checked in full first, so a bad line changes nothing. */
  struct direction scratch = {0};
  char *params[32];
  int n = 0;
  for (char *kv; n < 32 && (kv = strtok_r(NULL, " \t\r\n", &save));) params[n++] = kv;
  for (int i = 0; i < n; i++) {
    char *eq = strchr(params[i], '=');
    char *end;
    if (!eq) goto bad;
    *eq = 0;
    double v = strtod(eq + 1, &end);
    if (*end || v < 0 || set_param(&scratch, params[i], v)) goto bad;
    *eq = '=';
  }
  for (int i = 0; i < n; i++) {
    char *eq = strchr(params[i], '=');
    *eq = 0;
    double v = strtod(eq + 1, NULL);
    if (up) set_param(&hosts[h].up, params[i], v);
    if (down) set_param(&hosts[h].down, params[i], v);
  }
  printf("ok\n");
  fflush(stdout);
  return;
bad:
  printf("error bad parameter\n");
  fflush(stdout);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  srand48((long)now_ns());
  if (argc < 2 || argc - 1 > MAX_HOSTS) {
    fprintf(stderr, "usage: %s <tun>=<ipv4> ... (at most %d)\n", argv[0], MAX_HOSTS);
    return 2;
  }
  for (int i = 1; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    struct in_addr a;
    if (!eq || inet_pton(AF_INET, eq + 1, &a) != 1) {
      fprintf(stderr, "bad host %s\n", argv[i]);
      return 2;
    }
    *eq = 0;
    struct host *h = &hosts[host_count++];
    memset(h, 0, sizeof *h);
    strncpy(h->name, argv[i], IFNAMSIZ - 1);
    h->addr = a.s_addr;
    h->fd = open_tun(h->name);
    if (h->fd < 0) {
      fprintf(stderr, "cannot open TUN %s: %s\n", h->name, strerror(errno));
      return 1;
    }
  }
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  printf("ready\n");
  fflush(stdout);

  struct pollfd fds[MAX_HOSTS + 1];
  char control[4096];
  size_t control_len = 0;
  unsigned char buf[MTU];
  for (;;) {
    uint64_t now = now_ns();
    /* Uplinks hand packets to downlinks in the order they are due. */
    for (;;) {
      struct direction *first = NULL;
      for (int i = 0; i < host_count; i++) {
        struct direction *d = &hosts[i].up;
        if (d->head && d->head->due <= now && (!first || d->head->due < first->head->due)) first = d;
      }
      if (!first) break;
      uint64_t at = first->head->due;
      struct packet *p = take(first);
      enter(&hosts[p->to].down, p, at);
    }
    for (int i = 0; i < host_count; i++) {
      struct direction *d = &hosts[i].down;
      while (d->head && d->head->due <= now) {
        struct packet *p = take(d);
        if (write(hosts[i].fd, p->data, (size_t)p->len) < 0) { /* the namespace's stack is full: lost */ }
        free(p);
      }
    }
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < host_count; i++) {
      if (hosts[i].up.head && hosts[i].up.head->due < next) next = hosts[i].up.head->due;
      if (hosts[i].down.head && hosts[i].down.head->due < next) next = hosts[i].down.head->due;
    }
    struct timespec timeout, *tp = NULL;
    if (next != UINT64_MAX) {
      uint64_t wait = next > now ? next - now : 0;
      timeout.tv_sec = (time_t)(wait / 1000000000ull);
      timeout.tv_nsec = (long)(wait % 1000000000ull);
      tp = &timeout;
    }
    for (int i = 0; i < host_count; i++) fds[i] = (struct pollfd){ .fd = hosts[i].fd, .events = POLLIN };
    fds[host_count] = (struct pollfd){ .fd = 0, .events = POLLIN };
    if (ppoll(fds, (nfds_t)host_count + 1, tp, NULL) < 0 && errno != EINTR) return 1;
    now = now_ns();
    for (int i = 0; i < host_count; i++) {
      if (!(fds[i].revents & POLLIN)) continue;
      for (;;) {
        ssize_t n = read(hosts[i].fd, buf, sizeof buf);
        if (n <= 0) break;
        if (n < 20 || (buf[0] >> 4) != 4) continue; /* IPv4 only */
        uint32_t dst;
        memcpy(&dst, buf + 16, 4);
        int to = -1;
        for (int j = 0; j < host_count; j++) {
          if (j == i) continue;
          if (hosts[j].public_addr && hosts[j].public_addr == dst) {
            rewrite_address(buf, (int)n, 16, hosts[j].addr);
            to = j;
          } else if (!hosts[j].public_addr && hosts[j].addr == dst) {
            to = j;
          }
        }
        if (to < 0) {
          unroutable++;
          continue;
        }
        uint32_t src;
        memcpy(&src, buf + 12, 4);
        if (hosts[i].public_addr && src == hosts[i].addr) rewrite_address(buf, (int)n, 12, hosts[i].public_addr);
        struct packet *p = malloc(sizeof *p + (size_t)n);
        if (!p) continue;
        p->to = to;
        p->len = (int)n;
        memcpy(p->data, buf, (size_t)n);
        enter(&hosts[i].up, p, now);
      }
    }
    if (fds[host_count].revents & (POLLIN | POLLHUP)) {
      ssize_t n = read(0, control + control_len, sizeof control - 1 - control_len);
      if (n == 0) return 0;
      if (n > 0) {
        control_len += (size_t)n;
        control[control_len] = 0;
        char *start = control, *nl;
        while ((nl = strchr(start, '\n'))) {
          *nl = 0;
          command(start);
          start = nl + 1;
        }
        control_len = strlen(start);
        memmove(control, start, control_len);
        if (control_len == sizeof control - 1) control_len = 0;
      }
    }
  }
}
