/* Loaded into a jailed QEMU (LD_PRELOAD): QEMU 7.2 opens a guest RAM file
 * read-write even when it maps it private (share=off), and a VM template's
 * RAM must never be writable by a clone. The monitor hands QEMU the RAM as
 * descriptor ISOLA_RAM_FD, read-only for a clone, and names it
 * /proc/self/fd/N on the command line; this turns QEMU's open of that
 * name into a copy of the descriptor, so the jail needs no /proc and the
 * file no write permission. (QEMU 8.1 and later fall back to a read-only
 * open by themselves.) Every other open goes to the kernel as it was. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int ram_fd(const char *path) {
  static const char prefix[] = "/proc/self/fd/";
  const char *fd = getenv("ISOLA_RAM_FD");
  if (!fd || !path || strncmp(path, prefix, sizeof prefix - 1) != 0) return -1;
  if (strcmp(path + sizeof prefix - 1, fd) != 0) return -1;
  return atoi(fd);
}

static int open_at(int dirfd, const char *path, int flags, mode_t mode) {
  int ram = ram_fd(path);
  if (ram >= 0) return fcntl(ram, (flags & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
  return (int)syscall(SYS_openat, dirfd, path, flags, mode);
}

static mode_t mode_arg(int flags, va_list ap) {
  return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return open_at(AT_FDCWD, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return open_at(dirfd, path, flags, mode);
}

int __open_2(const char *path, int flags) { return open_at(AT_FDCWD, path, flags, 0); }

/* The large-file names are the same calls on 64-bit. */
int open64(const char *path, int flags, ...) __attribute__((alias("open")));
int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));
int __open64_2(const char *path, int flags) __attribute__((alias("__open_2")));
