// Output helpers shared by the commands: aligned tables, human sizes and
// times the way docker prints them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace isola::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // Columns separated by at least three spaces; the last one is not padded.
  std::string render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// "4.26MB", "812kB", "0B" (decimal units, as docker).
std::string human_size(uint64_t bytes);
// "3 weeks ago", "About an hour ago", "Less than a second ago".
std::string human_ago(int64_t then, int64_t now);
// Seconds since the epoch for an RFC 3339 time; -1 when it cannot be parsed.
int64_t parse_rfc3339(const std::string& text);

}  // namespace isola::cli
