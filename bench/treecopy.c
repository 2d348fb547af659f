/*
 * treecopy: copy a mounted tree (apmatrix's sysfs tree) into an empty
 * directory, for scripts/bench-fuse's whole-client rows, which time each
 * client over the mount against the same tree on tmpfs.
 *
 *   treecopy SRC DST
 *
 * Copies names, kinds (directory, regular file, symbolic link), link
 * targets verbatim, file contents as read(2) returns them to end of file,
 * modes, owners and modification times. A file that cannot be opened for
 * reading, or whose first read(2) fails, with EACCES (a write-only sysfs
 * attribute: kernfs, and apmatrix, refuse reading it even to root) comes
 * over empty with its mode; `cp -a` leaves it out. Any other failure, or
 * another kind of file, stops the copy (exit 1).
 *
 * Why not `cp -a` (or tar): both name every source file by its full path,
 * and with zero entry and attribute TTLs every component of that path costs
 * a FUSE LOOKUP and a GETATTR each time: `cp -a` of a 256-card x 85-domain
 * host (331,306 entries) ran for over 9 minutes. tar also trusts st_size
 * (4096 for every sysfs attribute) and pads the copy with zeros. This walk
 * opens each directory once and names every entry relative to it (openat,
 * readlinkat), takes kinds from getdents64's d_type, and opens a file before
 * its stat (fstat on the descriptor): about 8 FUSE requests a file instead
 * of dozens. It never follows a link, so it stays inside SRC.
 *
 * Prints a summary on stderr: directories, files (and how many came over
 * empty because they were unreadable), links, bytes, seconds.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long ndirs, nfiles, nunreadable, nlinks, nbytes;
static char *buf;
static size_t bufsize = 65536;

static void die(const char *what, const char *name)
{
    fprintf(stderr, "treecopy: %s %s: %s\n", what, name, strerror(errno));
    exit(1);
}

/* Owner, mode and modification time of DST's entry NAME (or of fd if NAME is
 * NULL) from st. Links keep only their owner and times (their mode is
 * always 0777). */
static void copy_meta(int dstdir, const char *name, int fd, const struct stat *st)
{
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    if (fd >= 0) {
        if (fchown(fd, st->st_uid, st->st_gid) < 0)
            die("fchown", name);
        if (fchmod(fd, st->st_mode & 07777) < 0)
            die("fchmod", name);
        if (futimens(fd, ts) < 0)
            die("futimens", name);
    } else {
        if (fchownat(dstdir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
            die("fchownat", name);
        if (utimensat(dstdir, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
            die("utimensat", name);
    }
}

static void copy_file(int srcdir, int dstdir, const char *name)
{
    struct stat st;
    size_t len = 0;
    ssize_t n;
    int in = openat(srcdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

    if (in >= 0) {
        if (fstat(in, &st) < 0)
            die("fstat", name);
        for (;;) {
            if (len == bufsize) {
                bufsize *= 2;
                if (!(buf = realloc(buf, bufsize)))
                    die("realloc", name);
            }
            n = read(in, buf + len, bufsize - len);
            if (n < 0 && errno == EACCES && len == 0) {
                /* A server that lets the kernel open files itself (OPEN
                 * answered ENOSYS) can refuse a write-only attribute only
                 * at its first READ. */
                nunreadable++;
                break;
            }
            if (n < 0)
                die("read", name);
            if (n == 0)
                break;
            len += n;
        }
        close(in);
    } else if (errno == EACCES) {
        if (fstatat(srcdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            die("fstatat", name);
        nunreadable++;
    } else {
        die("open", name);
    }
    int out = openat(dstdir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0)
        die("create", name);
    for (size_t off = 0; off < len; off += n)
        if ((n = write(out, buf + off, len - off)) < 0)
            die("write", name);
    copy_meta(dstdir, name, out, &st);
    close(out);
    nfiles++;
    nbytes += len;
}

static void copy_link(int srcdir, int dstdir, const char *name)
{
    char target[4096];
    struct stat st;
    ssize_t n = readlinkat(srcdir, name, target, sizeof target);

    if (n < 0)
        die("readlink", name);
    if (n == sizeof target) {
        errno = ENAMETOOLONG;
        die("readlink", name);
    }
    target[n] = 0;
    if (fstatat(srcdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        die("fstatat", name);
    if (symlinkat(target, dstdir, name) < 0)
        die("symlink", name);
    copy_meta(dstdir, name, -1, &st);
    nlinks++;
}

/* Copies the directory open as src into the one open as dst; closes both. */
static void copy_dir(int src, int dst)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    /* The names first: every entry is then copied with the listing closed,
     * so at most one listing per level is open and the descriptors stay few. */
    size_t n = 0, cap = 64;
    char **names = malloc(cap * sizeof *names);
    unsigned char *types = malloc(cap);

    if (!names || !types)
        die("malloc", "listing");
    if (fstat(src, &st) < 0)
        die("fstat", "directory");
    if (!(d = fdopendir(dup(src))))
        die("opendir", "directory");
    while ((errno = 0, e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n == cap) {
            cap *= 2;
            names = realloc(names, cap * sizeof *names);
            types = realloc(types, cap);
            if (!names || !types)
                die("realloc", "listing");
        }
        names[n] = strdup(e->d_name);
        types[n++] = e->d_type;
    }
    if (errno)
        die("readdir", "directory");
    closedir(d);

    for (size_t i = 0; i < n; i++) {
        const char *name = names[i];
        unsigned char type = types[i];
        if (type == DT_UNKNOWN) {
            struct stat es;
            if (fstatat(src, name, &es, AT_SYMLINK_NOFOLLOW) < 0)
                die("fstatat", name);
            type = S_ISDIR(es.st_mode) ? DT_DIR : S_ISREG(es.st_mode) ? DT_REG
                 : S_ISLNK(es.st_mode) ? DT_LNK : DT_UNKNOWN;
        }
        switch (type) {
        case DT_DIR: {
            int s = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (s < 0)
                die("open directory", name);
            if (mkdirat(dst, name, 0700) < 0)
                die("mkdir", name);
            int t = openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (t < 0)
                die("open new directory", name);
            copy_dir(s, t);
            break;
        }
        case DT_REG:
            copy_file(src, dst, name);
            break;
        case DT_LNK:
            copy_link(src, dst, name);
            break;
        default:
            errno = EINVAL;
            die("neither directory, file nor link:", name);
        }
        free(names[i]);
    }
    free(names);
    free(types);
    /* The mode last: a read-only directory could not be filled. */
    copy_meta(-1, "directory", dst, &st);
    close(src);
    close(dst);
    ndirs++;
}

int main(int argc, char **argv)
{
    struct timespec t0, t1;

    if (argc != 3) {
        fprintf(stderr, "usage: treecopy SRC DST  (DST: an existing, empty directory)\n");
        return 2;
    }
    if (!(buf = malloc(bufsize)))
        die("malloc", "buffer");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int src = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (src < 0)
        die("open", argv[1]);
    int dst = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dst < 0)
        die("open", argv[2]);
    copy_dir(src, dst);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr,
            "treecopy: %ld directories, %ld files (%ld unreadable, copied empty), %ld links, "
            "%ld bytes in %.1f s\n",
            ndirs, nfiles, nunreadable, nlinks, nbytes,
            (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
