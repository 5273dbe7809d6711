// JSON through nlohmann::json, with parsing that returns a Result instead of
// throwing, and typed accessors that fail with the field's name.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/error.h"

namespace isola {

using Json = nlohmann::json;

// Parses `text`; `what` names the document in the error ("manifest sha256:...").
Result<Json> parse_json(std::string_view text, const std::string& what);

// Field accessors for untrusted documents: a missing or mistyped field is an
// error naming the document and the field. Optional variants return a default
// when the field is absent or null.
Result<std::string> json_string(const Json& obj, const char* key, const std::string& what);
std::string json_string_or(const Json& obj, const char* key, std::string fallback = {});
Result<const Json*> json_object(const Json& obj, const char* key, const std::string& what);
Result<const Json*> json_array(const Json& obj, const char* key, const std::string& what);
Result<int64_t> json_int(const Json& obj, const char* key, const std::string& what);
// Never throw: `fallback` when `obj` is not an object or the field is absent
// or of another type. For frames from a guest or a client, where a wrong type
// must not take the reader down.
int64_t json_int_or(const Json& obj, const char* key, int64_t fallback);
bool json_bool_or(const Json& obj, const char* key, bool fallback);

}  // namespace isola
