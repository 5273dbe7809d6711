// Errors and results. Every fallible function returns Result<T>; an Error
// carries the errno (0 when none), the operation that failed and the object
// it failed on, so a message reads like: open '/var/lib/x': No such file.
#pragma once

#include <cerrno>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace isola {

struct Error {
  int err = 0;          // errno, or 0 for a logical error
  std::string op;       // what failed: "open", "parse manifest", ...
  std::string object;   // the path, digest or name it failed on
  std::string detail;   // extra human text (the fix, the reason)
  int exit_code = 0;    // for failures to start a process: docker's 126/127, else 0

  // The user-facing text: "op 'object': strerror: detail".
  std::string message() const;

  // Adds outer context: "load image: <inner message>".
  Error& context(std::string outer);
};

template <class T = void>
using Result = std::expected<T, Error>;

// An error from the current errno.
Error sys_error(std::string op, std::string object = {});
// An error from an explicit errno value.
Error sys_error(int err, std::string op, std::string object);
// A logical error (no errno).
Error make_error(std::string op, std::string object = {}, std::string detail = {});
// An error whose message is exactly `text`.
Error plain_error(std::string text);
// Untrusted bytes (archive names, a guest's messages) made fit for an error
// message: control bytes and backslashes as \xNN, cut at 256 bytes.
std::string printable(std::string_view s);

inline std::unexpected<Error> fail(Error e) { return std::unexpected(std::move(e)); }

}  // namespace isola

// Evaluates a Result expression; returns its error from the enclosing
// function, otherwise yields the value. Nestable: each use gets its own name.
#define ISOLA_CAT_(a, b) a##b
#define ISOLA_CAT(a, b) ISOLA_CAT_(a, b)
#define TRY(expr) ISOLA_TRY_IMPL(expr, ISOLA_CAT(isola_try_r_, __COUNTER__))
#define ISOLA_TRY_IMPL(expr, var)                                      \
  ({                                                                   \
    auto&& var = (expr);                                               \
    if (!var) return std::unexpected(std::move(var.error()));          \
    std::move(*var);                                                   \
  })

// Like TRY for Result<void>.
#define TRYV(expr)                                                     \
  do {                                                                 \
    auto&& isola_tryv_r_ = (expr);                                     \
    if (!isola_tryv_r_) return std::unexpected(std::move(isola_tryv_r_.error())); \
  } while (0)
