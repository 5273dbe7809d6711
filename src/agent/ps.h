// The guest's process table for `isola top`: every process read from /proc
// (kernel threads and the agent left out) as rows of text in the columns of
// `ps -ef`. The parsing and formatting are pure, for tests; list_processes
// reads a /proc.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace isola::agent {

// The fields of /proc/PID/stat that ps needs.
struct ProcStat {
  pid_t pid = 0;
  std::string comm;
  char state = '?';
  pid_t ppid = 0;
  int tty_nr = 0;
  unsigned flags = 0;
  uint64_t utime = 0, stime = 0;  // clock ticks
  uint64_t starttime = 0;         // clock ticks after boot
};

inline constexpr unsigned kPfKthread = 0x00200000;  // PF_KTHREAD in ProcStat::flags

// Parses /proc/PID/stat; comm may hold spaces and parentheses.
Result<ProcStat> parse_proc_stat(std::string_view text);

// "HH:MM:SS", or "D-HH:MM:SS" from a day on, as ps prints TIME.
std::string format_cpu_time(uint64_t seconds);
// "HH:MM" of a moment (UTC: the guest has no time zone).
std::string format_start_time(time_t when);
// "pts/3", "ttyS0", "console" or "?" for ProcStat::tty_nr.
std::string tty_name(int tty_nr);
// The name of `uid` in an /etc/passwd text, else the number.
std::string user_name(uid_t uid, std::string_view passwd);
// The command line with NULs as spaces, or "[comm]" when it is empty.
std::string format_command(std::string_view cmdline, std::string_view comm);

struct PsTable {
  std::vector<std::string> titles;  // UID PID PPID C STIME TTY TIME CMD
  std::vector<std::vector<std::string>> rows;
};

struct PsOptions {
  std::string proc = "/proc";
  pid_t exclude = 0;    // the agent itself
  std::string passwd;   // the container's /etc/passwd text, for user names
};

// Reads every process of `proc`, in PID order. Processes that vanish while
// being read are skipped.
Result<PsTable> list_processes(const PsOptions& opts);

std::string ps_reply_payload(const PsTable& table);

}  // namespace isola::agent
