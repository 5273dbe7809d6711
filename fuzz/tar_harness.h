// The tar harness behind layer_fuzz and archive_fuzz: unpacks the input
// into a target directory deep inside a sandbox full of bait (a file, a
// directory, relative and absolute symlinks to them) and aborts if anything
// outside the target changed, if a descriptor leaked, or if what was
// unpacked breaks a promise of src/image/unpack.h.
#pragma once

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "common/sha256.h"
#include "fuzz_util.h"
#include "image/unpack.h"

namespace isola::fuzz {

enum class TarKind { layer, image_archive };

class TarHarness {
 public:
  explicit TarHarness(TarKind kind) : kind_(kind) {
    root_ = workdir(kind == TarKind::layer ? "layer" : "archive");
    write_all(root_ + "/canary", "canary\n");
    make_dir(root_ + "/canary-dir");
    write_all(root_ + "/canary-dir/inner", "inner\n");
    if (::symlink("canary", (root_ + "/link-to-canary").c_str()) != 0 ||
        ::symlink((root_ + "/canary-dir").c_str(), (root_ + "/abs-link-to-dir").c_str()) != 0)
      die("harness: symlink in %s: %s", root_.c_str(), std::strerror(errno));
    std::string deep = root_;
    for (const char* part : {"a", "b", "c", "d"}) {
      deep += "/";
      deep += part;
      make_dir(deep);
    }
    blob_ = deep + "/input.tar";
    dest_ = deep + "/dest";
    write_all(blob_, "");
    make_dir(dest_, 0755);
    // Escapes of up to five ".." land in the sandbox, where they are seen.
    baseline_ = take();
  }

  void run(const uint8_t* data, size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    write_all(blob_, input);
    // Counted around the call: libFuzzer's symbolizer keeps pipes of its own.
    int fds = count_fds();
    bool ok;
    if (kind_ == TarKind::layer) {
      auto r = unpack_layer(blob_, dest_, "fuzz layer");
      ok = r.has_value();
      // An uncompressed stream's diff_id is the digest of the input itself.
      bool compressed = size >= 2 && ((data[0] == 0x1f && data[1] == 0x8b) ||
                                      (size >= 4 && data[0] == 0x28 && data[1] == 0xb5 && data[2] == 0x2f &&
                                       data[3] == 0xfd));
      if (ok && !compressed) FUZZ_CHECK(r->diff_id_hex == sha256_hex(input));
    } else {
      ok = extract_archive(blob_, dest_, "fuzz archive").has_value();
    }
    expect_no_fd_leak(fds);
    expect_same(baseline_, take(), kind_ == TarKind::layer ? "unpack_layer" : "extract_archive");
    if (ok) check_result();
    empty_dir(dest_);
  }

 private:
  Snapshot take() { return snapshot(root_, {"a/b/c/d/dest"}, {"a/b/c/d/input.tar"}); }

  // What a successful unpack may leave: in a layer, device nodes (images
  // carry /dev entries) but no 0:0 device other than a whiteout (a
  // character device with no permission bits, made from a .wh. entry); only directories (0755) and regular files (0644/0755) owned by
  // the caller in an image archive, its symlinks turned into hard links.
  void check_result() {
    int fd = ::open(dest_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) die("harness: open %s", dest_.c_str());
    check_tree(fd, "");
    ::close(fd);
  }

  void check_tree(int dirfd, const std::string& rel) {
    int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    DIR* dir = ::fdopendir(dup);
    if (!dir) die("harness: opendir %s", rel.c_str());
    std::set<std::string> names;
    while (struct dirent* ent = ::readdir(dir))
      if (std::strcmp(ent->d_name, ".") != 0 && std::strcmp(ent->d_name, "..") != 0) names.insert(ent->d_name);
    ::closedir(dir);
    for (const std::string& name : names) {
      std::string r = rel.empty() ? name : rel + "/" + name;
      struct stat st;
      if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) die("harness: stat %s", r.c_str());
      if (kind_ == TarKind::layer) {
        bool device = S_ISBLK(st.st_mode) || S_ISCHR(st.st_mode);
        bool whiteout = S_ISCHR(st.st_mode) && (st.st_mode & 07777) == 0;
        if (device && st.st_rdev == makedev(0, 0) && !whiteout)
          die("unpack_layer: 0:0 device '%s' (mode 0%o) is not a whiteout", r.c_str(), st.st_mode);
      } else {
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
          die("extract_archive: '%s' is neither a directory nor a regular file (mode 0%o)", r.c_str(), st.st_mode);
        mode_t perm = st.st_mode & 07777;
        if (S_ISDIR(st.st_mode) && perm != 0755) die("extract_archive: directory '%s' has mode 0%o", r.c_str(), perm);
        if (S_ISREG(st.st_mode) && perm != 0644 && perm != 0755)
          die("extract_archive: file '%s' has mode 0%o", r.c_str(), perm);
        if (st.st_uid != ::geteuid()) die("extract_archive: '%s' is owned by %u", r.c_str(), st.st_uid);
      }
      if (S_ISDIR(st.st_mode)) {
        int sub = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) die("harness: open %s", r.c_str());
        check_tree(sub, r);
        ::close(sub);
      }
    }
  }

  TarKind kind_;
  std::string root_, blob_, dest_;
  Snapshot baseline_;
};

}  // namespace isola::fuzz
