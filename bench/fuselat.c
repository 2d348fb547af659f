/*
 * fuselat: per-operation latency of one file system operation, for
 * scripts/bench-fuse. Written in C so that nothing but the operation's own
 * system calls and two clock reads (vDSO, ~25 ns together) is timed.
 *
 *   fuselat OP PATH [VALUE [PATH2]]
 *
 * OP is one of
 *   write  one pwrite(2) of VALUE at offset 0 on a descriptor opened once
 *          (O_WRONLY) before the loop: the store alone, no open or close
 *   change one pwrite(2) of VALUE at offset 0, alternately to PATH and PATH2
 *          (PATH first), on two descriptors opened once: for a pair of files
 *          such as unassign_domain / assign_domain whose writes undo each
 *          other, so every timed write changes the state
 *   echo   openat(O_WRONLY|O_TRUNC) + write(VALUE) + close: what the shell's
 *          `echo VALUE > PATH` does, minus fork and exec
 *   read   openat(O_RDONLY) + read(2) until it returns 0 + close: what cat
 *          does (two READs with direct I/O: the data, then end of file)
 *   list   openat(O_RDONLY|O_DIRECTORY) + getdents64(2) until it returns 0
 *          + close: what readdir(3) does (no stat of the entries)
 *
 * PATH's parent directory is opened once, before timing, and the timed
 * operations name only PATH's last component (openat). With a zero entry
 * TTL every path component costs a LOOKUP round trip, so this keeps the
 * figures comparable between trees of different depth.
 *
 * Environment: BENCH_N timed iterations (default 20000), BENCH_WARMUP untimed
 * ones before them (default BENCH_N / 10, at least 100).
 *
 * Prints one line:  OP N median_us p90_us min_us mean_us SIZE
 * where SIZE is the bytes written or read per op, or for list the number of
 * directory entries besides . and ..
 * and exits 1 (with the errno) on the first failing call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *op, *path, *value;
static int dirfd_, keptfd = -1, keptfd2 = -1;
static long count; /* ops done, warm-up included */
static char *name;
static size_t vlen;
static char buf[65536];
static long size; /* of the last op: bytes, or directory entries */

static void die(const char *what)
{
    fprintf(stderr, "fuselat %s %s: %s: %s\n", op, path, what, strerror(errno));
    exit(1);
}

static void once(void)
{
    int fd;
    ssize_t n;
    long total = 0;

    switch (op[0]) {
    case 'c': /* change */
        if (pwrite(count % 2 ? keptfd2 : keptfd, value, vlen, 0) != (ssize_t)vlen)
            die(count % 2 ? "pwrite PATH2" : "pwrite");
        size = vlen;
        break;
    case 'w': /* write */
        if (pwrite(keptfd, value, vlen, 0) != (ssize_t)vlen)
            die("pwrite");
        size = vlen;
        break;
    case 'e': /* echo */
        fd = openat(dirfd_, name, O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0)
            die("open");
        if (write(fd, value, vlen) != (ssize_t)vlen)
            die("write");
        if (close(fd) < 0)
            die("close");
        size = vlen;
        break;
    case 'r': /* read */
        fd = openat(dirfd_, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            die("open");
        while ((n = read(fd, buf, sizeof buf)) > 0)
            total += n;
        if (n < 0)
            die("read");
        if (total == 0) {
            errno = ENODATA;
            die("read returned no data");
        }
        close(fd);
        size = total;
        break;
    case 'l': /* list */
        fd = openat(dirfd_, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            die("opendir");
        while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
            for (long off = 0; off < n;) {
                /* struct linux_dirent64: ino 8, off 8, reclen 2, type 1, name */
                unsigned short reclen;
                const char *nm = buf + off + 19;
                memcpy(&reclen, buf + off + 16, sizeof reclen);
                if (strcmp(nm, ".") && strcmp(nm, ".."))
                    total++;
                off += reclen;
            }
        }
        if (n < 0)
            die("getdents64");
        close(fd);
        size = total;
        break;
    }
    count++;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "write") && strcmp(argv[1], "change") &&
                     strcmp(argv[1], "echo") && strcmp(argv[1], "read") &&
                     strcmp(argv[1], "list"))) {
        fprintf(stderr, "usage: fuselat write|change|echo|read|list PATH [VALUE [PATH2]]\n");
        return 2;
    }
    op = argv[1];
    path = argv[2];
    value = argc > 3 ? argv[3] : "1\n";
    vlen = strlen(value);

    long n = getenv("BENCH_N") ? atol(getenv("BENCH_N")) : 20000;
    long warm = getenv("BENCH_WARMUP") ? atol(getenv("BENCH_WARMUP")) : n / 10;
    if (n < 1)
        n = 1;
    if (warm < 100)
        warm = 100;

    char *d = strdup(path), *b = strdup(path);
    dirfd_ = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd_ < 0)
        die("open parent directory");
    name = basename(b);
    if (op[0] == 'w' || op[0] == 'c') {
        keptfd = openat(dirfd_, name, O_WRONLY | O_CLOEXEC);
        if (keptfd < 0)
            die("open");
    }
    if (op[0] == 'c') {
        keptfd2 = open(argc > 4 ? argv[4] : path, O_WRONLY | O_CLOEXEC);
        if (keptfd2 < 0)
            die("open PATH2");
    }

    for (long i = 0; i < warm; i++)
        once();

    double *t = malloc(n * sizeof *t), sum = 0;
    if (!t)
        die("malloc");
    for (long i = 0; i < n; i++) {
        double t0 = now_us();
        once();
        t[i] = now_us() - t0;
        sum += t[i];
    }
    qsort(t, n, sizeof *t, cmp);
    printf("%s %ld %.2f %.2f %.2f %.2f %ld\n", op, n, t[n / 2], t[(n * 9) / 10], t[0], sum / n,
           size);
    return 0;
}
