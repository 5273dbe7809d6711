/* Stands in for a compromised VM worker: `jail_probe PID ROOTFS OTHER`
 * takes the worker PID's namespaces, credentials, capabilities,
 * no_new_privs and seccomp filters (copied from the running worker with
 * PTRACE_SECCOMP_GET_FILTER), then tries what an attacker inside QEMU
 * would. ROOTFS is the worker's own container rootfs (as the host names
 * it), OTHER a file of another container. Prints one line per attempt:
 * "name ok" or "name <errno name>". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <dirent.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <unistd.h>

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif

static void die(const char *what) {
  fprintf(stderr, "jail_probe: %s: %s\n", what, strerror(errno));
  exit(2);
}

static const char *rootfs, *other;
static char path[4096];

static uint64_t status_hex(pid_t pid, const char *key) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) die("status");
  uint64_t v = 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == ':') v = strtoull(line + strlen(key) + 1, 0, 16);
  fclose(f);
  return v;
}

#define MAX_FILTERS 8
static struct sock_fprog filters[MAX_FILTERS];
static int nfilters;

/* The worker's filters, newest first (index 0). */
static void copy_filters(pid_t pid) {
  if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) die("ptrace seize");
  if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0) die("ptrace interrupt");
  if (waitpid(pid, 0, __WALL) < 0) die("waitpid");
  for (nfilters = 0; nfilters < MAX_FILTERS; ++nfilters) {
    long n = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)(long)nfilters, 0);
    if (n < 0) break;
    struct sock_filter *insns = calloc((size_t)n, sizeof *insns);
    if (ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)(long)nfilters, insns) != n) die("get filter");
    filters[nfilters].len = (unsigned short)n;
    filters[nfilters].filter = insns;
  }
  if (ptrace(PTRACE_DETACH, pid, 0, 0) != 0) die("ptrace detach");
}

static void enter(pid_t pid, const char *kind) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/%s", pid, kind);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || setns(fd, 0) != 0) die(path);
  close(fd);
}

static uint64_t bnd, eff, prm, inh;
static int user_ns = -1;

static void become_worker(void) {
  if (setns(user_ns, CLONE_NEWUSER) != 0) die("setns user");
  if (setresgid(0, 0, 0) || setresuid(0, 0, 0)) die("setresuid");
  for (int cap = 0; cap < 64; ++cap)
    if (!(bnd & (1ull << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL) break;
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2] = {{(uint32_t)eff, (uint32_t)prm, (uint32_t)inh},
                                        {(uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32)}};
  if (syscall(SYS_capset, &h, d) != 0) die("capset");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die("no_new_privs");
  for (int i = nfilters - 1; i >= 0; --i)
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filters[i]) != 0) die("seccomp");
}

static int count_processes(void) {
  DIR *d = opendir("/proc");
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] >= '0' && e->d_name[0] <= '9') ++n;
  closedir(d);
  return n;
}

static int try_open(const char *path, int flags) {
  int fd = open(path, flags | O_CLOEXEC, 0644);
  if (fd >= 0) close(fd);
  return fd;
}

/* The attempts, each in a process of its own that becomes the worker
 * first: QEMU's own filter kills a process for some calls (SIGSYS), and
 * that is a refusal too. Each returns the call's result (errno set). */
static int own_read(void) { snprintf(path, sizeof path, "%s/etc/passwd", rootfs); return try_open(path, O_RDONLY); }
static int own_write(void) {
  snprintf(path, sizeof path, "%s/probe-file", rootfs);
  int rc = try_open(path, O_WRONLY | O_CREAT);
  if (rc >= 0) unlink(path);
  return rc;
}
static int own_chown(void) { /* as 9p does: fchownat */
  snprintf(path, sizeof path, "%s/probe-file", rootfs);
  int rc = try_open(path, O_WRONLY | O_CREAT);
  if (rc >= 0) rc = fchownat(AT_FDCWD, path, 1234, 1234, AT_SYMLINK_NOFOLLOW);
  int saved = errno;
  unlink(path);
  errno = saved;
  return rc;
}
static int host_shadow(void) { return try_open("/etc/shadow", O_RDONLY); }
static int host_passwd(void) { return try_open("/etc/passwd", O_RDONLY); }
static int other_container(void) { return try_open(other, O_RDONLY); }
/* The directory of every container's directory, as the host has it: the
 * jail shows the worker's own container there and no other. */
static int other_containers(void) {
  snprintf(path, sizeof path, "%s/../..", rootfs);
  DIR *d = opendir(path);
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) ++n;
  closedir(d);
  if (n > 1) return 0;
  errno = ENOENT;
  return -1;
}
static int write_root(void) { return try_open("/probe", O_WRONLY | O_CREAT); }
static int write_usr(void) { return try_open("/usr/probe", O_WRONLY | O_CREAT); }
static int write_dev(void) { return try_open("/dev/probe", O_WRONLY | O_CREAT); }
static int mknod_device(void) {
  snprintf(path, sizeof path, "%s/dev-sda", rootfs);
  int rc = mknod(path, S_IFBLK | 0600, makedev(8, 0));
  if (rc == 0) unlink(path);
  return rc;
}
static int raw_socket(void) { return socket(AF_INET, SOCK_RAW, IPPROTO_ICMP); }
static int inet_socket(void) { return socket(AF_INET, SOCK_STREAM, 0); }
static int packet_socket(void) { return socket(AF_PACKET, SOCK_RAW, 0); }
static int mount_tmpfs(void) { return mount("none", "/tmp", "tmpfs", 0, 0); }
static int unshare_user(void) { return unshare(CLONE_NEWUSER); }
static int load_module(void) { return (int)syscall(SYS_finit_module, -1, "", 0); }
static int ptrace_worker(void) { return (int)ptrace(PTRACE_ATTACH, 1, 0, 0); }
static int keyring(void) { return (int)syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -4 /* user */, 0); }
static int bpf_call(void) { return (int)syscall(SYS_bpf, 0, 0, 0); }
static int io_uring(void) { return (int)syscall(SYS_io_uring_setup, 1, 0); }
static int by_handle(void) { return (int)syscall(SYS_open_by_handle_at, AT_FDCWD, 0, O_RDONLY); }
static int cgroup_fs(void) { return try_open("/sys/fs/cgroup", O_RDONLY | O_DIRECTORY); }
static int sysctl(void) { return try_open("/proc/sys/kernel/core_pattern", O_WRONLY); }
/* The RAM a clone maps is the template's, shared with every clone. */
static int template_ram(void) {
  char target[4096] = "";
  ssize_t n = readlink("/proc/1/fd/4", target, sizeof target - 1);
  if (n <= 0 || !strstr(target, "/memory")) {
    errno = ENODEV; /* not a clone: no template RAM */
    return -1;
  }
  return try_open("/proc/1/fd/4", O_RDWR);
}

static const struct {
  const char *name;
  int (*run)(void);
} attempts[] = {
    {"read-own-rootfs", own_read}, {"write-own-rootfs", own_write}, {"chown-own-file", own_chown},
    {"read-host-shadow", host_shadow}, {"read-host-passwd", host_passwd},
    {"read-other-container", other_container}, {"list-other-containers", other_containers}, {"write-root", write_root},
    {"write-usr", write_usr}, {"write-dev", write_dev}, {"mknod-block-device", mknod_device},
    {"raw-socket", raw_socket}, {"inet-socket", inet_socket}, {"packet-socket", packet_socket},
    {"mount-tmpfs", mount_tmpfs}, {"unshare-user", unshare_user}, {"load-module", load_module},
    {"ptrace-worker", ptrace_worker}, {"keyctl", keyring}, {"bpf", bpf_call}, {"io-uring", io_uring},
    {"open-by-handle", by_handle}, {"cgroup-fs", cgroup_fs}, {"sysctl", sysctl},
    {"write-template-ram", template_ram},
};

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: jail_probe PID ROOTFS OTHER\n");
    return 2;
  }
  pid_t pid = atoi(argv[1]);
  rootfs = argv[2];
  other = argv[3];
  copy_filters(pid);
  bnd = status_hex(pid, "CapBnd"), eff = status_hex(pid, "CapEff"), prm = status_hex(pid, "CapPrm");
  inh = status_hex(pid, "CapInh");
  snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
  if ((user_ns = open(path, O_RDONLY | O_CLOEXEC)) < 0) die(path);
  /* The namespaces the worker's user namespace owns; that namespace itself
   * is entered by each attempt. */
  for (const char *const *k = (const char *const[]){"ipc", "uts", "net", "pid", "cgroup", "mnt", 0}; *k; ++k)
    enter(pid, *k);
  if (chdir("/") != 0) die("chdir");
  for (size_t i = 0; i < sizeof attempts / sizeof *attempts; ++i) {
    int pipefd[2];
    if (pipe(pipefd) != 0) die("pipe");
    fflush(stdout);
    pid_t child = fork(); /* in the worker's PID namespace */
    if (child < 0) die("fork");
    if (child == 0) {
      close(pipefd[0]);
      become_worker();
      int rc = attempts[i].run();
      const char *what = rc >= 0 ? "ok" : strerrorname_np(errno);
      if (write(pipefd[1], what, strlen(what)) < 0) _exit(4);
      _exit(0);
    }
    close(pipefd[1]);
    char what[64] = "";
    ssize_t n = read(pipefd[0], what, sizeof what - 1);
    close(pipefd[0]);
    int st;
    waitpid(child, &st, 0);
    if (WIFSIGNALED(st)) printf("%s killed-%s\n", attempts[i].name, sigabbrev_np(WTERMSIG(st)));
    else printf("%s %s\n", attempts[i].name, n > 0 ? what : "no-answer");
  }
  /* Processes the worker's jail shows: its own only. */
  fflush(stdout);
  pid_t child = fork();
  if (child == 0) {
    become_worker();
    printf("visible-processes %d\n", count_processes());
    fflush(stdout);
    _exit(0);
  }
  waitpid(child, 0, 0);
  return 0;
}
