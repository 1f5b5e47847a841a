/* LD_PRELOAD shim giving a process a pod's network view on a shared loopback: every pod has its own
 * 127.0.x.y (KUBEHARNESS_POD_IP). Wildcard/loopback binds become binds to the pod IP, so two replicas can
 * both "listen on :8080"; connects to 127.0.0.1 go to the pod's own IP, as localhost does inside a pod.
 * Name lookups consult KUBEHARNESS_HOSTS first (a hosts-format file the node helper keeps current with
 * Service and pod names), standing in for cluster DNS. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <strings.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <errno.h>

typedef int (*sockfn)(int, const struct sockaddr *, socklen_t);

static int pod_ip(struct in_addr *out) {
    const char *s = getenv("KUBEHARNESS_POD_IP");
    return s && *s && inet_pton(AF_INET, s, out) == 1;
}

static void mapped(struct in6_addr *a, struct in_addr ip) {
    memset(a, 0, sizeof *a);
    a->s6_addr[10] = 0xff;
    a->s6_addr[11] = 0xff;
    memcpy(&a->s6_addr[12], &ip, 4);
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static sockfn real;
    if (!real) real = (sockfn)dlsym(RTLD_NEXT, "bind");
    struct in_addr ip;
    if (addr && pod_ip(&ip)) {
        if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
            struct sockaddr_in a;
            memcpy(&a, addr, sizeof a);
            if (a.sin_addr.s_addr == htonl(INADDR_ANY) || a.sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
                a.sin_addr = ip;
                return real(fd, (struct sockaddr *)&a, sizeof a);
            }
        } else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
            struct sockaddr_in6 a;
            memcpy(&a, addr, sizeof a);
            if (IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr) || IN6_IS_ADDR_LOOPBACK(&a.sin6_addr)) {
                int v6only = 0;
                socklen_t sl = sizeof v6only;
                getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &sl);
                if (v6only) {
                    /* The program also binds an IPv4 socket; pods talk IPv4 only, so park this one on an
                     * ephemeral ::1 port instead of fighting other pods for [::]:port. */
                    a.sin6_addr = in6addr_loopback;
                    a.sin6_port = 0;
                } else {
                    mapped(&a.sin6_addr, ip); /* dual-stack socket: accept IPv4 on the pod IP */
                }
                return real(fd, (struct sockaddr *)&a, sizeof a);
            }
        }
    }
    return real(fd, addr, len);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static sockfn real;
    if (!real) real = (sockfn)dlsym(RTLD_NEXT, "connect");
    struct in_addr ip;
    if (addr && pod_ip(&ip)) {
        if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
            struct sockaddr_in a;
            memcpy(&a, addr, sizeof a);
            if (a.sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
                a.sin_addr = ip;
                return real(fd, (struct sockaddr *)&a, sizeof a);
            }
        } else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
            struct sockaddr_in6 a;
            memcpy(&a, addr, sizeof a);
            struct in6_addr lo4;
            struct in_addr l;
            l.s_addr = htonl(INADDR_LOOPBACK);
            mapped(&lo4, l);
            if (memcmp(&a.sin6_addr, &lo4, sizeof lo4) == 0) {
                mapped(&a.sin6_addr, ip);
                return real(fd, (struct sockaddr *)&a, sizeof a);
            }
        }
    }
    return real(fd, addr, len);
}

/* Find `name` in the hosts file; copies its address to ip. */
static int lookup(const char *name, char *ip, size_t iplen) {
    const char *path = getenv("KUBEHARNESS_HOSTS");
    if (!path || !*path || !name) return 0;
    size_t n = strlen(name);
    if (n && name[n - 1] == '.') n--;
    FILE *f = fopen(path, "re");
    if (!f) return 0;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char *save = NULL;
        char *addr = strtok_r(line, " \t\r\n", &save);
        if (!addr || addr[0] == '#') continue;
        char *tok;
        while ((tok = strtok_r(NULL, " \t\r\n", &save))) {
            if (strlen(tok) == n && strncasecmp(tok, name, n) == 0) {
                snprintf(ip, iplen, "%s", addr);
                found = 1;
                break;
            }
        }
    }
    fclose(f);
    return found;
}

typedef int (*gaifn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res) {
    static gaifn real;
    if (!real) real = (gaifn)dlsym(RTLD_NEXT, "getaddrinfo");
    char ip[64];
    if (node && lookup(node, ip, sizeof ip)) {
        struct addrinfo h;
        if (hints) h = *hints;
        else memset(&h, 0, sizeof h);
        if (h.ai_family == AF_INET6) h.ai_family = AF_UNSPEC;
        h.ai_flags |= AI_NUMERICHOST;
        h.ai_flags &= ~AI_CANONNAME;
        return real(ip, service, &h, res);
    }
    return real(node, service, hints, res);
}

/* A pod's host name is its own (pod name or spec.hostname), not the machine's: programs derive
 * worker ids from it. */
int gethostname(char *name, size_t len) {
    const char *h = getenv("KUBEHARNESS_HOSTNAME");
    if (h && *h) {
        if (strlen(h) + 1 > len) { errno = ENAMETOOLONG; return -1; }
        memcpy(name, h, strlen(h) + 1);
        return 0;
    }
    static int (*real)(char *, size_t);
    if (!real) real = (int (*)(char *, size_t))dlsym(RTLD_NEXT, "gethostname");
    return real(name, len);
}

int uname(struct utsname *buf) {
    static int (*real)(struct utsname *);
    if (!real) real = (int (*)(struct utsname *))dlsym(RTLD_NEXT, "uname");
    int rc = real(buf);
    const char *h = getenv("KUBEHARNESS_HOSTNAME");
    if (rc == 0 && h && *h) snprintf(buf->nodename, sizeof buf->nodename, "%s", h);
    return rc;
}
