#include "ociruntime/bundle.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "common/fs.h"
#include "engine/limit_checks.h"
#include "ociruntime/runtime.h"
#include "runtime/mount_options.h"
#include "runtime/security.h"

namespace isola::oci {

namespace {

const Json* member_or_null(const Json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

Result<std::vector<Hook>> parse_hook_list(const Json& hooks, const char* key) {
  std::vector<Hook> out;
  const std::string field = std::string("hooks.") + key;
  const Json* list = member_or_null(hooks, key);
  if (!list) return out;
  if (!list->is_array()) return fail(make_error("parse runtime spec", field, "must be an array"));
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& h = (*list)[i];
    const std::string f = field + "[" + std::to_string(i) + "]";
    if (!h.is_object()) return fail(make_error("parse runtime spec", f, "must be an object"));
    Hook hook;
    hook.path = TRY(json_string(h, "path", f));
    if (hook.path.empty() || hook.path[0] != '/')
      return fail(make_error("parse runtime spec", f + ".path", "must be an absolute path"));
    for (const char* k : {"args", "env"}) {
      const Json* arr = member_or_null(h, k);
      if (!arr) continue;
      if (!arr->is_array()) return fail(make_error("parse runtime spec", f + "." + k, "must be an array"));
      for (const Json& v : *arr) {
        if (!v.is_string()) return fail(make_error("parse runtime spec", f + "." + k, "must hold strings"));
        (std::string(k) == "args" ? hook.args : hook.env).push_back(v.get<std::string>());
      }
    }
    if (h.contains("timeout")) {
      const Json& t = h["timeout"];
      if (!t.is_number_integer() || t.get<int64_t>() <= 0)
        return fail(make_error("parse runtime spec", f + ".timeout", "must be a positive integer"));
      hook.timeout = static_cast<int>(std::min<int64_t>(t.get<int64_t>(), 86400));
    }
    out.push_back(std::move(hook));
  }
  return out;
}

// What isola would have to ignore: refused with the field named.
Result<void> check_supported(const Json& config, const Hooks& hooks) {
  auto refuse = [](const std::string& field, const std::string& why) {
    return fail(make_error("unsupported runtime spec", field, why));
  };
  if (!hooks.create_container.empty() || !hooks.start_container.empty())
    return refuse("hooks", "createContainer and startContainer hooks are not supported by isola-runtime");
  if (const Json* process = member_or_null(config, "process")) {
    for (const char* key : {"scheduler", "ioPriority", "execCPUAffinity"})
      if (member_or_null(*process, key))
        return refuse(std::string("process.") + key, "is not supported by isola-runtime yet");
  }
  const Json* linux = member_or_null(config, "linux");
  if (!linux) return {};
  for (const char* key : {"timeOffsets", "intelRdt", "personality"})
    if (member_or_null(*linux, key)) return refuse(std::string("linux.") + key, "is not supported by isola-runtime");
  if (const Json* prop = member_or_null(*linux, "rootfsPropagation"))
    if (!prop->is_string() || !propagation_flags(prop->get<std::string>()))
      return refuse("linux.rootfsPropagation", "is not a propagation type (private, shared, slave, unbindable, or "
                                               "the same with r)");
  // Limits isola cannot apply yet: refused rather than left off, which
  // would leave the container less constrained than asked.
  if (const Json* res = member_or_null(*linux, "resources"); res && res->is_object()) {
    for (const char* key : {"blockIO", "rdma", "network", "unified"})
      if (const Json* v = member_or_null(*res, key); v && !v->empty())
        return refuse(std::string("linux.resources.") + key, "is not supported yet");
  }
  return {};
}

// The cpuset names CPUs and memory nodes this host has.
Result<void> check_cpuset_lists(const Resources& r) {
  if (!r.cpuset_cpus.empty()) TRYV(check_cpuset(r.cpuset_cpus, "linux.resources.cpu.cpus"));
  if (!r.cpuset_mems.empty()) TRYV(check_cpuset_mems(r.cpuset_mems, "linux.resources.cpu.mems"));
  return {};
}

void warn_unraisable_ambient(const ProcessSpec& process) {
  if (!process.capabilities) return;
  for (const std::string& cap : unraisable_ambient(*process.capabilities))
    print_warning("can't raise ambient capability " + cap +
                  ": it is not also in process.capabilities.permitted and .inheritable; left out");
}

Result<Backend> choose_backend(const RuntimeSpec& spec, bool vm_by_default) {
  auto it = spec.annotations.find(kIsolationAnnotation);
  if (it == spec.annotations.end()) return vm_by_default ? Backend::vm : Backend::process;
  if (it->second == "vm" || it->second == "hyperv") return Backend::vm;
  if (it->second == "process") return Backend::process;
  return fail(make_error("annotation", kIsolationAnnotation,
                         "\"" + it->second + "\" is not an isolation level: use process, vm or hyperv"));
}

}  // namespace

void print_warning(const std::string& text) { std::fprintf(stderr, "isola-runtime: warning: %s\n", text.c_str()); }

Result<Hooks> parse_hooks(const Json& config) {
  Hooks h;
  const Json* hooks = member_or_null(config, "hooks");
  if (!hooks) return h;
  if (!hooks->is_object()) return fail(make_error("parse runtime spec", "hooks", "must be an object"));
  h.prestart = TRY(parse_hook_list(*hooks, "prestart"));
  h.create_runtime = TRY(parse_hook_list(*hooks, "createRuntime"));
  h.create_container = TRY(parse_hook_list(*hooks, "createContainer"));
  h.start_container = TRY(parse_hook_list(*hooks, "startContainer"));
  h.poststart = TRY(parse_hook_list(*hooks, "poststart"));
  h.poststop = TRY(parse_hook_list(*hooks, "poststop"));
  return h;
}

Result<std::string> resolve_cgroups_path(const std::string& path, bool systemd, const std::string& id) {
  if (path.empty()) return "isola-runtime/" + id;
  if (!systemd || path.find(':') == std::string::npos) return path;
  // slice:prefix:name. A slice "a-b-c.slice" lives in a.slice/a-b.slice/.
  size_t a = path.find(':'), b = path.find(':', a + 1);
  if (b == std::string::npos || path.find(':', b + 1) != std::string::npos)
    return fail(make_error("cgroups path", path, "a systemd cgroups path is slice:prefix:name"));
  std::string slice = path.substr(0, a), prefix = path.substr(a + 1, b - a - 1), name = path.substr(b + 1);
  if (slice.empty()) slice = "system.slice";
  if (!slice.ends_with(".slice")) return fail(make_error("cgroups path", path, "the slice must end in .slice"));
  std::string dir;
  std::string stem = slice.substr(0, slice.size() - 6);
  if (stem != "-") {
    size_t pos = 0;
    for (;;) {
      size_t dash = stem.find('-', pos);
      dir += (dir.empty() ? "" : "/") + stem.substr(0, dash) + ".slice";
      if (dash == std::string::npos) break;
      pos = dash + 1;
    }
  }
  std::string unit = name.ends_with(".scope") || name.ends_with(".slice") ? name
                     : prefix.empty()                                      ? name + ".scope"
                                                                           : prefix + "-" + name + ".scope";
  return dir.empty() ? unit : dir + "/" + unit;
}

Result<Bundle> load_bundle(const std::string& dir_in, const BundleOptions& opts) {
  Bundle b;
  char* real = ::realpath(dir_in.empty() ? "." : dir_in.c_str(), nullptr);
  if (!real) return fail(sys_error("open the bundle", dir_in.empty() ? "." : dir_in));
  b.dir = real;
  ::free(real);
  std::string config_path = path_join(b.dir, "config.json");
  auto text = read_file(config_path, 16u << 20);
  if (!text) return fail(std::move(text.error().context("read the bundle's config.json")));
  b.config = TRY(parse_json(*text, config_path));
  b.spec = TRY(RuntimeSpec::from_json(b.config));
  if (b.spec.process.args.empty()) return fail(make_error("runtime spec", "process.args", "no command to run"));
  if (b.spec.root_path[0] != '/') b.spec.root_path = path_join(b.dir, b.spec.root_path);
  if (!is_directory(b.spec.root_path))
    return fail(make_error("runtime spec", "root.path", b.spec.root_path + " is not a directory"));
  b.hooks = TRY(parse_hooks(b.config));
  TRYV(check_supported(b.config, b.hooks));
  TRYV(check_cpuset_lists(b.spec.linux.resources));
  warn_unraisable_ambient(b.spec.process);
  b.spec.linux.cgroups_path = TRY(resolve_cgroups_path(b.spec.linux.cgroups_path, opts.systemd_cgroup, opts.id));
  b.backend = TRY(choose_backend(b.spec, opts.vm_by_default));
  return b;
}

}  // namespace isola::oci
