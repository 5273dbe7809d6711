// The user's view of a pull or push: on a terminal one line per blob,
// redrawn in place with a bar, bytes and rate; otherwise one plain line per
// change of state (logs stay readable); nothing with --quiet.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "registry/transfer.h"

namespace isola::cli {

class ProgressView {
 public:
  // `verb` is what moving bytes is called: "Downloading", "Pushing". The
  // view writes to `fd` (stdout for pull, stderr when run pulls).
  ProgressView(bool quiet, bool terminal, std::string verb, int fd);
  void on_event(const TransferEvent& ev);
  // Prints a status line between the blob lines and what follows.
  void say(const std::string& text);

 private:
  struct Line {
    TransferEvent last;
    std::chrono::steady_clock::time_point started;
    uint64_t started_bytes = 0;
  };
  std::string render(const Line& line) const;
  void redraw(bool force);

  bool quiet_, terminal_;
  int fd_;
  std::string verb_;
  std::mutex mu_;
  std::vector<Line> lines_;
  size_t drawn_ = 0;  // lines on screen to move back over
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace isola::cli
