// --format for the listing commands, as docker: "table" (the default
// columns), "table TEMPLATE" (a header made from the field names, then a row
// per object), a bare TEMPLATE (one line per object) or "json" (one object
// per line). Tabs in table templates separate aligned columns.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"
#include "common/json.h"

namespace isola::cli {

struct Column {
  std::string field;   // the row object's key: "Names"
  std::string header;  // "NAMES"
  bool shown = true;   // in the default table
};

// Renders `rows` per `format` into the returned text. A template that does
// not parse or fails on a row is an error naming the template.
Result<std::string> format_rows(const std::vector<Json>& rows, const std::string& format,
                                const std::vector<Column>& columns);
// format_rows to stdout; reports an error and returns the exit code.
int print_rows(const std::vector<Json>& rows, const std::string& format, const std::vector<Column>& columns);

// inspect -f: the template once per object, each followed by a newline.
Result<std::string> format_each(const std::vector<Json>& objects, const std::string& format);
// Every inspect command's output: the array as JSON (docker's four-space
// indent), or with `format` the template per object. Returns `code`, or
// the exit code of a template error.
int print_inspect(const Json& objects, const std::string& format, int code);

}  // namespace isola::cli
