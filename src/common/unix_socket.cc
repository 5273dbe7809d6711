#include "common/unix_socket.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "common/fs.h"

namespace isola {

namespace {

// The address for `path`; `dir` keeps the directory open while it is used.
Result<sockaddr_un> address_for(const std::string& path, UniqueFd& dir) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string name = path;
  if (path.size() >= sizeof addr.sun_path) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0) return fail(make_error("socket address", path, "path too long"));
    dir = TRY(open_path(path.substr(0, slash), O_PATH | O_DIRECTORY));
    name = "/proc/self/fd/" + std::to_string(dir.get()) + path.substr(slash);
    if (name.size() >= sizeof addr.sun_path) return fail(make_error("socket address", path, "file name too long"));
  }
  std::memcpy(addr.sun_path, name.c_str(), name.size() + 1);
  return addr;
}

}  // namespace

Result<UniqueFd> unix_listen(const std::string& path, int type) {
  UniqueFd dir;
  sockaddr_un addr = TRY(address_for(path, dir));
  ::unlink(addr.sun_path);
  int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(sys_error("socket", path));
  UniqueFd sock(fd);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return fail(sys_error("bind", path));
  if (::chmod(addr.sun_path, 0600) != 0) return fail(sys_error("chmod", path));
  if (::listen(fd, 16) != 0) return fail(sys_error("listen", path));
  return sock;
}

Result<UniqueFd> unix_connect(const std::string& path, int type, const std::string& what) {
  UniqueFd dir;
  sockaddr_un addr = TRY(address_for(path, dir));
  int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(sys_error("socket", path));
  UniqueFd sock(fd);
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return fail(sys_error("connect to " + what, path));
  return sock;
}

Result<void> send_fd(int sock, int fd, std::string_view data) {
  char byte = 0;
  struct iovec iov = {data.empty() ? &byte : const_cast<char*>(data.data()), data.empty() ? 1 : data.size()};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &fd, sizeof(int));
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail(sys_error("send a descriptor"));
  return {};
}

Result<UniqueFd> recv_fd(int sock, int flags) {
  char buf[4096];
  struct iovec iov = {buf, sizeof buf};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail(sys_error("receive a descriptor"));
  if (n == 0) return fail(make_error("receive a descriptor", "", "the sender closed the socket"));
  struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(int)) ||
      (msg.msg_flags & MSG_CTRUNC))
    return fail(make_error("receive a descriptor", "", "no descriptor came"));
  int fd;
  std::memcpy(&fd, CMSG_DATA(cm), sizeof(int));
  return UniqueFd(fd);
}

}  // namespace isola
