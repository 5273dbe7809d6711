#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>

#include "cli/table.h"

namespace isola::cli {

namespace {

void put(int fd, const std::string& text) {
  ssize_t ignored = ::write(fd, text.data(), text.size());
  (void)ignored;
}

}  // namespace

ProgressView::ProgressView(bool quiet, bool terminal, std::string verb, int fd)
    : quiet_(quiet), terminal_(terminal), fd_(fd), verb_(std::move(verb)) {}

std::string ProgressView::render(const Line& line) const {
  const TransferEvent& ev = line.last;
  std::string text = ev.id + ": ";
  switch (ev.phase) {
    case BlobPhase::waiting: return text + "Waiting";
    case BlobPhase::exists: return text + "Already exists";
    case BlobPhase::verifying: return text + "Verifying checksum";
    case BlobPhase::done: return text + (verb_ == "Downloading" ? "Download complete" : "Pushed");
    case BlobPhase::extracting: return text + "Extracting";
    case BlobPhase::stored: return text + "Pull complete";
    case BlobPhase::transferring: break;
  }
  text += verb_;
  if (ev.total == 0) return text;
  if (terminal_) {
    constexpr int width = 30;
    int filled = static_cast<int>(width * std::min<double>(1.0, double(ev.done) / double(ev.total)));
    text += " [" + std::string(filled, '=') + (filled < width ? ">" : "") +
            std::string(width - filled - (filled < width ? 1 : 0), ' ') + "]";
  }
  if (!terminal_) return text + " " + human_size(ev.total);
  text += " " + human_size(ev.done) + "/" + human_size(ev.total);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - line.started).count();
  if (secs > 0.2 && ev.done > line.started_bytes)
    text += " " + human_size(static_cast<uint64_t>(double(ev.done - line.started_bytes) / secs)) + "/s";
  return text;
}

void ProgressView::on_event(const TransferEvent& ev) {
  if (quiet_) return;
  std::lock_guard lock(mu_);
  Line* line = nullptr;
  for (Line& l : lines_)
    if (l.last.id == ev.id) line = &l;
  bool changed = !line || line->last.phase != ev.phase;
  if (!line) {
    lines_.push_back({ev, std::chrono::steady_clock::now(), ev.done});
    line = &lines_.back();
  }
  if (changed && ev.phase == BlobPhase::transferring) {
    line->started = std::chrono::steady_clock::now();
    line->started_bytes = ev.done;
  }
  line->last = ev;
  if (terminal_) {
    redraw(changed);
  } else if (changed) {
    put(fd_, render(*line) + "\n");
  }
}

void ProgressView::redraw(bool force) {
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  std::string out;
  if (drawn_ > 0) out += "\x1b[" + std::to_string(drawn_) + "A";
  for (const Line& l : lines_) out += "\x1b[2K" + render(l) + "\n";
  drawn_ = lines_.size();
  put(fd_, out);
}

void ProgressView::say(const std::string& text) {
  if (quiet_) return;
  std::lock_guard lock(mu_);
  if (terminal_ && !lines_.empty()) redraw(true);
  drawn_ = 0;
  lines_.clear();
  put(fd_, text + "\n");
}

}  // namespace isola::cli
