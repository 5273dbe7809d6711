/* A static probe for tests/integration/test_escapes.py: the system calls a
 * container escape needs, which busybox has no applet for (keyctl, add_key,
 * bpf, open_by_handle_at, finit_module, setns, ptrace, a namespace-creating
 * clone), and a host-side wrapper that gives a command a session keyring
 * holding a key.
 *
 *   probe sys                  one line per call: NAME ok | NAME <errno name>
 *   probe keyring DESC         "session <serial|errno>" and "search <serial|errno>":
 *                              this process's session keyring, and whether a
 *                              "user" key DESC is reachable from its keyrings
 *   probe ptrace PID...        "PID ok|<errno name>" for PTRACE_ATTACH
 *   probe with-key DESC FILE CMD ARGS...   (host side) joins a new session
 *                              keyring, adds the "user" key DESC to it, readable
 *                              only by its possessors, writes "SESSION KEY" to
 *                              FILE and execs CMD
 *
 * Built with `cc -static` by the test, so that it runs in any rootfs and in
 * the VM's guest. Only raw syscall(2): no libkeyutils, no libbpf.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *errname(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case ESRCH: return "ESRCH";
    case ENOKEY: return "ENOKEY";
    case ESTALE: return "ESTALE";
    case ENOENT: return "ENOENT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case ENODEV: return "ENODEV";
    case EFAULT: return "EFAULT";
    case EKEYREVOKED: return "EKEYREVOKED";
    default: {
      static char buf[32];
      snprintf(buf, sizeof buf, "errno%d", e);
      return buf;
    }
  }
}

static void report(const char *name, long rc) {
  if (rc < 0) printf("%s %s\n", name, errname(errno));
  else printf("%s ok\n", name);
  fflush(stdout);
}

static int sys_probe(void) {
  /* keyctl: the session keyring's serial (succeeds for anyone, unless filtered). */
  report("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
  /* add_key: a key in the process keyring (succeeds for anyone, unless filtered). */
  report("add_key", syscall(SYS_add_key, "user", "isola-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING));
  /* bpf: a one-entry array map (needs CAP_BPF/CAP_SYS_ADMIN, or is filtered). */
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 4;
  attr.max_entries = 1;
  long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
  report("bpf", fd);
  if (fd >= 0) close((int)fd);
  /* mount: a tmpfs on a fresh directory (needs CAP_SYS_ADMIN, or is filtered). */
  mkdir("/tmp/.probe-mnt", 0700);
  long rc = mount("none", "/tmp/.probe-mnt", "tmpfs", 0, NULL);
  report("mount", rc);
  if (rc == 0) umount2("/tmp/.probe-mnt", MNT_DETACH);
  rmdir("/tmp/.probe-mnt");
  /* unshare of a mount namespace (needs CAP_SYS_ADMIN, or is filtered); done
     in a child so that the probe itself stays where it was. */
  pid_t child = fork();
  if (child == 0) _exit(unshare(CLONE_NEWNS) == 0 ? 0 : errno);
  int st = 0;
  waitpid(child, &st, 0);
  errno = WEXITSTATUS(st);
  report("unshare", WEXITSTATUS(st) == 0 ? 0 : -1);
  /* clone with a namespace flag. */
  long c = syscall(SYS_clone, CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0);
  if (c == 0) _exit(0);
  if (c > 0) waitpid((pid_t)c, &st, 0);
  report("clone_newuts", c);
  /* setns into our own network namespace (needs CAP_SYS_ADMIN, or is filtered). */
  int ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  report("setns", ns < 0 ? ns : syscall(SYS_setns, ns, CLONE_NEWNET));
  if (ns >= 0) close(ns);
  /* open_by_handle_at ("shocker"): a made-up handle. Without a filter and with
     CAP_DAC_READ_SEARCH the kernel answers ESTALE/EINVAL; without the
     capability, or filtered, EPERM. */
  struct {
    unsigned int handle_bytes;
    int handle_type;
    unsigned char f_handle[8];
  } h = {8, 1, {2, 0, 0, 0, 0, 0, 0, 0}};
  report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, &h, O_RDONLY));
  /* finit_module of a bad descriptor: EBADF once past the capability check
     and the filter; EPERM before. Loads nothing. */
  report("finit_module", syscall(SYS_finit_module, -1, "", 0));
  return 0;
}

static int keyring_probe(const char *desc) {
  long s = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
  if (s < 0) printf("session %s\n", errname(errno));
  else printf("session %ld\n", s);
  /* Searches the thread, process and session keyrings (what this process
     possesses) for the key. */
  long k = syscall(SYS_request_key, "user", desc, NULL, 0);
  if (k < 0) printf("search %s\n", errname(errno));
  else printf("search %ld\n", k);
  return 0;
}

static int ptrace_probe(int argc, char **argv) {
  for (int i = 0; i < argc; ++i) {
    pid_t pid = (pid_t)atoi(argv[i]);
    long rc = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
    printf("%s %s\n", argv[i], rc == 0 ? "ok" : errname(errno));
    if (rc == 0) ptrace(PTRACE_DETACH, pid, NULL, NULL);
  }
  return 0;
}

static int with_key(const char *desc, const char *file, char **cmd) {
  long session = syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL);
  if (session < 0) { perror("join session keyring"); return 125; }
  long key = syscall(SYS_add_key, "user", desc, "host secret", 11, KEY_SPEC_SESSION_KEYRING);
  if (key < 0) { perror("add_key"); return 125; }
  /* Possessor: everything; user, group, other: nothing. Only a process whose
     keyrings hold it can find it. */
  if (syscall(SYS_keyctl, KEYCTL_SETPERM, key, 0x3f000000) < 0) { perror("setperm"); return 125; }
  FILE *f = fopen(file, "w");
  if (!f) { perror(file); return 125; }
  fprintf(f, "%ld %ld\n", session, key);
  fclose(f);
  execvp(cmd[0], cmd);
  perror(cmd[0]);
  return 127;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "sys") == 0) return sys_probe();
  if (argc == 3 && strcmp(argv[1], "keyring") == 0) return keyring_probe(argv[2]);
  if (argc >= 3 && strcmp(argv[1], "ptrace") == 0) return ptrace_probe(argc - 2, argv + 2);
  if (argc >= 5 && strcmp(argv[1], "with-key") == 0) return with_key(argv[2], argv[3], argv + 4);
  fprintf(stderr, "usage: probe sys | keyring DESC | ptrace PID... | with-key DESC FILE CMD...\n");
  return 2;
}
