#include "common/json.h"

namespace isola {

Result<Json> parse_json(std::string_view text, const std::string& what) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return fail(make_error("parse", what, "malformed JSON"));
  return j;
}

static Error field_error(const std::string& what, const char* key, const char* want) {
  return make_error("read", what, std::string("field \"") + key + "\" is missing or not " + want);
}

Result<std::string> json_string(const Json& obj, const char* key, const std::string& what) {
  if (!obj.is_object()) return fail(make_error("read", what, "not a JSON object"));
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return fail(field_error(what, key, "a string"));
  return it->get<std::string>();
}

std::string json_string_or(const Json& obj, const char* key, std::string fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return fallback;
  return it->get<std::string>();
}

Result<const Json*> json_object(const Json& obj, const char* key, const std::string& what) {
  if (!obj.is_object()) return fail(make_error("read", what, "not a JSON object"));
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_object()) return fail(field_error(what, key, "an object"));
  return &*it;
}

Result<const Json*> json_array(const Json& obj, const char* key, const std::string& what) {
  if (!obj.is_object()) return fail(make_error("read", what, "not a JSON object"));
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_array()) return fail(field_error(what, key, "an array"));
  return &*it;
}

Result<int64_t> json_int(const Json& obj, const char* key, const std::string& what) {
  if (!obj.is_object()) return fail(make_error("read", what, "not a JSON object"));
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_integer()) return fail(field_error(what, key, "an integer"));
  return it->get<int64_t>();
}

int64_t json_int_or(const Json& obj, const char* key, int64_t fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_integer()) return fallback;
  return it->get<int64_t>();
}

bool json_bool_or(const Json& obj, const char* key, bool fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_boolean()) return fallback;
  return it->get<bool>();
}

}  // namespace isola
