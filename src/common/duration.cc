#include "common/duration.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string_view>

namespace isola {

namespace {

constexpr int64_t kUnit[] = {1, 1000, 1000000, 1000000000, 60'000'000'000, 3'600'000'000'000};
const char* const kUnitName[] = {"ns", "us", "ms", "s", "m", "h"};

std::optional<int64_t> unit_ns(std::string_view unit) {
  for (size_t i = 0; i < std::size(kUnit); ++i)
    if (unit == kUnitName[i]) return kUnit[i];
  if (unit == "µs") return 1000;
  return std::nullopt;
}

}  // namespace

std::optional<int64_t> parse_go_duration(const std::string& text) {
  if (text == "0") return 0;
  if (text.empty() || text.size() > 64) return std::nullopt;
  double total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    if (i == start) return std::nullopt;
    std::string number = text.substr(start, i - start);
    if (std::count(number.begin(), number.end(), '.') > 1 || number == ".") return std::nullopt;
    size_t unit_start = i;
    while (i < text.size() && !std::isdigit(static_cast<unsigned char>(text[i])) && text[i] != '.') ++i;
    auto unit = unit_ns(std::string_view(text).substr(unit_start, i - unit_start));
    if (!unit) return std::nullopt;
    total += std::strtod(number.c_str(), nullptr) * static_cast<double>(*unit);
    if (total > 9.2e18) return std::nullopt;
  }
  return static_cast<int64_t>(std::llround(total));
}

std::string format_go_duration(int64_t ns) {
  if (ns == 0) return "0s";
  if (ns < 1'000'000'000) {
    for (int i = 2; i >= 0; --i)
      if (ns % kUnit[i] == 0) return std::to_string(ns / kUnit[i]) + kUnitName[i];
  }
  std::string out;
  int64_t h = ns / kUnit[5], m = ns % kUnit[5] / kUnit[4], rest = ns % kUnit[4];
  if (h) out += std::to_string(h) + "h";
  if (h || m) out += std::to_string(m) + "m";
  std::string s = std::to_string(rest / kUnit[3]);
  if (int64_t frac = rest % kUnit[3]) {
    std::string f = std::to_string(frac + kUnit[3]).substr(1);
    while (f.back() == '0') f.pop_back();
    s += "." + f;
  }
  return out + s + "s";
}

}  // namespace isola
