#include "runtime/mount_options.h"

#include <sys/mount.h>

#include <algorithm>
#include <iterator>

namespace isola {

namespace {

struct FlagWord {
  const char* name;
  bool clear;
  unsigned long flag;
};
constexpr FlagWord kFlagWords[] = {
    {"ro", false, MS_RDONLY},           {"rw", true, MS_RDONLY},
    {"nosuid", false, MS_NOSUID},       {"suid", true, MS_NOSUID},
    {"nodev", false, MS_NODEV},         {"dev", true, MS_NODEV},
    {"noexec", false, MS_NOEXEC},       {"exec", true, MS_NOEXEC},
    {"sync", false, MS_SYNCHRONOUS},    {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},     {"noatime", false, MS_NOATIME},
    {"atime", true, MS_NOATIME},        {"nodiratime", false, MS_NODIRATIME},
    {"diratime", true, MS_NODIRATIME},  {"relatime", false, MS_RELATIME},
    {"norelatime", true, MS_RELATIME},  {"strictatime", false, MS_STRICTATIME},
    {"nostrictatime", true, MS_STRICTATIME},
};

constexpr std::pair<const char*, unsigned long> kPropagationWords[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC}, {"slave", MS_SLAVE},
    {"rslave", MS_SLAVE | MS_REC}, {"shared", MS_SHARED},             {"rshared", MS_SHARED | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

enum class Attr { set, clear, atime };
struct AttrWord {
  const char* name;
  Attr how;
  uint64_t attr;
};
// An atime word sets one value of the MOUNT_ATTR__ATIME field (relatime is
// 0), which the kernel takes only with the whole field cleared; "ratime",
// "rnorelatime" and "rnostrictatime" name no single value of it.
constexpr AttrWord kRecursiveWords[] = {
    {"rro", Attr::set, MOUNT_ATTR_RDONLY},
    {"rrw", Attr::clear, MOUNT_ATTR_RDONLY},
    {"rnosuid", Attr::set, MOUNT_ATTR_NOSUID},
    {"rsuid", Attr::clear, MOUNT_ATTR_NOSUID},
    {"rnodev", Attr::set, MOUNT_ATTR_NODEV},
    {"rdev", Attr::clear, MOUNT_ATTR_NODEV},
    {"rnoexec", Attr::set, MOUNT_ATTR_NOEXEC},
    {"rexec", Attr::clear, MOUNT_ATTR_NOEXEC},
    {"rnodiratime", Attr::set, MOUNT_ATTR_NODIRATIME},
    {"rdiratime", Attr::clear, MOUNT_ATTR_NODIRATIME},
    {"rnoatime", Attr::atime, MOUNT_ATTR_NOATIME},
    {"rrelatime", Attr::atime, MOUNT_ATTR_RELATIME},
    {"rstrictatime", Attr::atime, MOUNT_ATTR_STRICTATIME},
};
constexpr const char* kRefusedRecursive[] = {"ratime", "rnorelatime", "rnostrictatime"};

void apply_attr(MountOptions& o, const AttrWord& w) {
  switch (w.how) {
    case Attr::atime:
      o.attr_clear |= MOUNT_ATTR__ATIME;
      o.attr_set = (o.attr_set & ~uint64_t{MOUNT_ATTR__ATIME}) | w.attr;
      break;
    case Attr::clear:
      o.attr_clear |= w.attr;
      o.attr_set &= ~w.attr;
      break;
    case Attr::set:
      o.attr_set |= w.attr;
      o.attr_clear &= ~w.attr;
      break;
  }
}

}  // namespace

std::optional<unsigned long> propagation_flags(std::string_view word) {
  for (const auto& [name, flags] : kPropagationWords)
    if (word == name) return flags;
  return std::nullopt;
}

Result<MountOptions> parse_mount_options(const std::vector<std::string>& options, const std::string& field) {
  MountOptions m;
  for (const std::string& o : options) {
    if (o == "bind" || o == "rbind") {
      m.bind = true;
      m.recursive = m.recursive || o == "rbind";
      continue;
    }
    auto word = std::find_if(std::begin(kFlagWords), std::end(kFlagWords),
                             [&](const FlagWord& w) { return o == w.name; });
    if (word != std::end(kFlagWords)) {
      m.flags = word->clear ? (m.flags & ~word->flag) : (m.flags | word->flag);
      continue;
    }
    if (auto prop = propagation_flags(o)) {
      m.propagation.push_back(*prop);
      continue;
    }
    auto attr = std::find_if(std::begin(kRecursiveWords), std::end(kRecursiveWords),
                             [&](const AttrWord& w) { return o == w.name; });
    if (attr != std::end(kRecursiveWords)) {
      apply_attr(m, *attr);
      continue;
    }
    if (std::find(std::begin(kRefusedRecursive), std::end(kRefusedRecursive), o) != std::end(kRefusedRecursive))
      return fail(make_error("unsupported runtime spec", field, "the recursive option \"" + o +
                                                                    "\" is not supported; use rrelatime, rnoatime "
                                                                    "or rstrictatime"));
    // Everything else is the file system's business: size=, mode=, gid=, newinstance...
    if (!m.data.empty()) m.data += ',';
    m.data += o;
  }
  return m;
}

}  // namespace isola
