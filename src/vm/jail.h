// The VM worker's jail: what a QEMU process sees and may do. QEMU runs as
// root of a user namespace of its own whose ids are the host's one to one
// (so 9p keeps the true owners of a container's files) and keeps only the
// capabilities 9p needs, inside that namespace; it has mount, PID, IPC,
// network, UTS and cgroup namespaces of its own. Its root is a read-only
// tmpfs showing /usr (read-only), its container's shares, the guest kernel
// and initramfs and four device nodes; sockets, the console log and the
// RAM arrive as descriptors. Then no_new_privs and a seccomp allow-list of
// the system calls a VM worker makes. docs/security.md has the threat
// model and why root-in-a-namespace rather than an unprivileged user.
#pragma once

#include <sched.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "vm/qemu.h"

namespace isola {

inline constexpr unsigned long kJailNamespaces =
    CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWCGROUP;

struct JailMount {
  std::string path;       // on the host, and at the same path in the jail
  bool writable = false;  // else read-only
  bool device = false;    // a device node (else no device opens through it)
  bool executable = false;  // QEMU's programs and libraries (else noexec)
};

struct JailPlan {
  std::string root;                // an empty directory the jail's root is built on
  std::vector<JailMount> mounts;   // parents before children
  std::vector<std::string> links;  // top-level symbolic links of a merged /usr ("lib" -> "usr/lib")
  std::string hostname;
};

// The jail of the worker of `config`, built on `root`; `preload` is the
// library QEMU is started with (vm/preload.c), shown read-only.
JailPlan jail_plan(const VmConfig& config, const std::string& root, const std::string& preload);

// In the worker (made with kJailNamespaces, its ids mapped): builds the
// jail's root, moves into it and drops every capability but 9p's. Runs
// between clone and exec: no threads, nothing else to undo on failure.
Result<void> enter_jail(const JailPlan& plan);

// ISOLA_VM_JAIL=off: the worker runs as before the jail (the host's
// namespaces, root with 9p's capabilities, no cgroup and no filter of
// isola's). For measuring what the jail costs (bench/run), never for use.
bool jail_disabled();
// Keeps only 9p's capabilities (bounding, effective, permitted).
Result<void> keep_worker_capabilities();

// In the monitor: maps the worker's user namespace onto the host's ids.
Result<void> map_jail_ids(pid_t worker);

// The confinement of the worker `worker` as `isola inspect` shows it
// (VM.Worker): read from the kernel while it runs, else what it will get.
Json worker_confinement(pid_t worker);

// The worker's memory limit: the guest's RAM plus QEMU's own (MiB).
uint64_t worker_memory_limit_mb(uint64_t guest_mb);
inline constexpr int64_t kWorkerPidsLimit = 256;

}  // namespace isola
