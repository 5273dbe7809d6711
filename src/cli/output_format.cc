#include "cli/output_format.h"

#include <cctype>
#include <iostream>

#include "cli/commands.h"
#include "cli/gotemplate.h"
#include "cli/table.h"

namespace isola::cli {

namespace {

Result<GoTemplate> compile(const std::string& format, const std::string& text) {
  auto t = GoTemplate::parse(text);
  if (!t) return fail(make_error("--format", format, t.error().message() + "; fix the template (Go text/template syntax)"));
  return t;
}

Result<std::string> run(const GoTemplate& t, const std::string& format, const Json& row) {
  auto out = t.execute(row);
  if (!out) return fail(make_error("--format", format, out.error().message()));
  return out;
}

// Docker's header for a field it does not list: the name in capitals.
Json header_row(const std::vector<Column>& columns) {
  Json h = Json::object();
  for (const Column& c : columns) h[c.field] = c.header;
  return h;
}

std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  for (size_t b = 0;;) {
    size_t e = line.find('\t', b);
    out.push_back(line.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) return out;
    b = e + 1;
  }
}

}  // namespace

Result<std::string> format_rows(const std::vector<Json>& rows, const std::string& format,
                                const std::vector<Column>& columns) {
  std::string text = format;
  bool table = format.empty() || format == "table" || format.starts_with("table ");
  if (format.empty() || format == "table") {
    text.clear();
    for (const Column& c : columns)
      if (c.shown) text += (text.empty() ? "{{." : "\t{{.") + c.field + "}}";
  } else if (table) {
    text = format.substr(6);
    text.erase(0, text.find_first_not_of(' '));
  }
  std::string out;
  if (format == "json") {
    for (const Json& row : rows) out += row.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
    return out;
  }
  // Docker turns a typed "\t" into a tab, so shells need no $'...'.
  for (size_t p; (p = text.find("\\t")) != std::string::npos;) text.replace(p, 2, "\t");
  GoTemplate t = TRY(compile(format, text));
  if (!table) {
    for (const Json& row : rows) out += TRY(run(t, format, row)) + "\n";
    return out;
  }
  auto header = t.execute(header_row(columns));
  Table grid(cells(header.value_or("")));
  for (const Json& row : rows) {
    std::string line = TRY(run(t, format, row));
    // A row the template spreads over lines gives each line its own row.
    for (size_t b = 0; b <= line.size();) {
      size_t e = std::min(line.find('\n', b), line.size());
      if (e > b || line.empty()) grid.add(cells(line.substr(b, e - b)));
      b = e + 1;
    }
  }
  return grid.render();
}

int print_rows(const std::vector<Json>& rows, const std::string& format, const std::vector<Column>& columns) {
  auto out = format_rows(rows, format, columns);
  if (!out) return report(out.error());
  std::cout << *out;
  return 0;
}

Result<std::string> format_each(const std::vector<Json>& objects, const std::string& format) {
  std::string text = format;
  for (size_t p; (p = text.find("\\t")) != std::string::npos;) text.replace(p, 2, "\t");
  GoTemplate t = TRY(compile(format, text));
  std::string out;
  for (const Json& o : objects) out += TRY(run(t, format, o)) + "\n";
  return out;
}

int print_inspect(const Json& objects, const std::string& format, int code) {
  if (format.empty() || format == "json") {
    std::cout << objects.dump(4) << "\n";
    return code;
  }
  auto text = format_each(std::vector<Json>(objects.begin(), objects.end()), format);
  if (!text) return report(text.error());
  std::cout << *text;
  return code;
}

}  // namespace isola::cli
