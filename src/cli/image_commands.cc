// Image commands: load, save, import, images, image inspect/mount/unmount, tag, rmi.
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>

#include "cli/commands.h"
#include "cli/filters.h"
#include "cli/output_format.h"
#include "cli/table.h"
#include "engine/events.h"
#include "image/store.h"

namespace isola::cli {

namespace {

Result<ImageStore> open_store(const Globals& g) { return ImageStore::open(g.root); }

int cmd_load(const Globals& g, const std::string& input, bool quiet) {
  auto store = open_store(g);
  if (!store) return report(store.error());
  auto reports = store->load(input);
  if (!reports) return report(reports.error());
  for (const LoadReport& r : *reports)
    record_named_event(g.root, "image", "load", r.tags.empty() ? r.id.str() : r.tags.front(), r.id.str());
  if (quiet) return 0;
  for (const LoadReport& r : *reports) {
    if (r.tags.empty()) std::cout << "Loaded image ID: " << r.id.str() << "\n";
    for (const std::string& t : r.tags) std::cout << "Loaded image: " << t << "\n";
  }
  return 0;
}

int cmd_save(const Globals& g, const std::vector<std::string>& refs, std::string output) {
  if (output.empty()) {
    if (::isatty(STDOUT_FILENO))
      return report(make_error("save", "standard output",
                               "it is a terminal; name a file with -o FILE or redirect the output"));
    output = "-";
  }
  auto store = open_store(g);
  if (!store) return report(store.error());
  if (auto r = store->save(refs, output); !r) return report(r.error());
  for (const std::string& ref : refs) record_named_event(g.root, "image", "save", ref, ref);
  return 0;
}

int cmd_import(const Globals& g, const std::string& input, const std::string& tag,
               const std::vector<std::string>& changes, const std::string& message) {
  auto store = open_store(g);
  if (!store) return report(store.error());
  NewImage spec;
  spec.tag = tag;
  spec.changes = changes;
  spec.comment = message.empty() ? "Imported from " + input : message;
  spec.created_by = "isola import";
  auto made = store->import_rootfs(input, spec);
  if (!made) return report(made.error());
  record_named_event(g.root, "image", "import", made->id.str(), made->id.str());
  std::cout << made->id.str() << "\n";
  return 0;
}

struct ImageRow {
  std::string repo, tag;
  const ImageRecord* image;
};

std::vector<ImageRow> image_rows(const std::vector<ImageRecord>& images) {
  std::vector<ImageRow> rows;
  for (const ImageRecord& img : images) {
    if (img.tags.empty()) rows.push_back({"<none>", "<none>", &img});
    for (const std::string& t : img.tags) {
      size_t colon = t.rfind(':');
      rows.push_back({t.substr(0, colon), t.substr(colon + 1), &img});
    }
  }
  std::sort(rows.begin(), rows.end(), [](const ImageRow& a, const ImageRow& b) {
    int64_t ca = parse_rfc3339(a.image->created), cb = parse_rfc3339(b.image->created);
    if (ca != cb) return ca > cb;
    return std::tie(a.repo, a.tag) < std::tie(b.repo, b.tag);
  });
  return rows;
}

// Whether an image row passes images' --filter (docker's keys).
Result<bool> image_matches(ImageStore& store, const Filters& f, const ImageRow& r) {
  auto created_of = [&](const std::string& ref) -> Result<int64_t> {
    auto other = store.resolve(ref);
    if (!other) return fail(other.error());
    return parse_rfc3339(other->created);
  };
  int64_t created = parse_rfc3339(r.image->created);
  for (const std::string& v : f.values("before"))
    if (created >= TRY(created_of(v))) return false;
  for (const std::string& v : f.values("since"))
    if (created <= TRY(created_of(v))) return false;
  for (const std::string& v : f.values("dangling"))
    if (v != "true" && v != "false" && v != "1" && v != "0")
      return fail(make_error("--filter", "dangling=" + v, "not a boolean; use dangling=true or dangling=false"));
  std::map<std::string, std::string> labels;
  if (f.has("label") || f.has("label!"))
    if (auto config = store.config(*r.image); config)
      if (auto l = config->value("config", Json::object()).value("Labels", Json::object()); l.is_object())
        for (auto it = l.begin(); it != l.end(); ++it)
          if (it->is_string()) labels[it.key()] = it->get<std::string>();
  return f.any("reference", [&](const std::string& v) {
           return r.tag != "<none>" && (glob_match(v, r.repo) || glob_match(v, r.repo + ":" + r.tag));
         }) &&
         f.any("dangling", [&](const std::string& v) { return (v == "true" || v == "1") == r.image->tags.empty(); }) &&
         f.labels_match(labels);
}

// `repository` is docker's operand (images busybox, images busybox:1.36):
// a reference filter that every other filter is added to.
int cmd_images(const Globals& g, bool quiet, bool no_trunc, const std::string& format,
               const std::vector<std::string>& filter_args, const std::string& repository) {
  auto filters = Filters::parse(filter_args, {"before", "dangling", "label", "reference", "since"});
  if (!filters) return report(filters.error());
  auto store = open_store(g);
  if (!store) return report(store.error());
  auto images = store->list();
  if (!images) return report(images.error());
  std::vector<ImageRow> rows;
  for (const ImageRow& r : image_rows(*images)) {
    if (!repository.empty() && (r.tag == "<none>" || !(glob_match(repository, r.repo) ||
                                                     glob_match(repository, r.repo + ":" + r.tag))))
      continue;
    auto keep = image_matches(*store, *filters, r);
    if (!keep) return report(keep.error());
    if (*keep) rows.push_back(r);
  }
  if (quiet) {
    std::vector<std::string> seen;
    for (const ImageRow& r : rows) {
      std::string id = no_trunc ? r.image->id.str() : r.image->id.short_id();
      if (std::find(seen.begin(), seen.end(), id) != seen.end()) continue;
      seen.push_back(id);
      std::cout << id << "\n";
    }
    return 0;
  }
  if (format == "json") {
    Json out = Json::array();
    for (const ImageRow& r : rows)
      out.push_back({{"Repository", r.repo}, {"Tag", r.tag}, {"Id", r.image->id.str()},
                     {"Created", r.image->created}, {"Size", r.image->size}});
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  int64_t now = static_cast<int64_t>(::time(nullptr));
  std::vector<Json> objects;
  for (const ImageRow& r : rows) {
    int64_t created = parse_rfc3339(r.image->created);
    objects.push_back({{"ID", no_trunc ? r.image->id.str() : r.image->id.short_id()}, {"Repository", r.repo},
                       {"Tag", r.tag}, {"Digest", r.image->manifest.str()},
                       {"CreatedSince", human_ago(created, now)}, {"CreatedAt", r.image->created},
                       {"Size", human_size(r.image->size)}, {"Containers", "N/A"}});
  }
  static const std::vector<Column> columns = {
      {"Repository", "REPOSITORY"}, {"Tag", "TAG"}, {"Digest", "DIGEST", false}, {"ID", "IMAGE ID"},
      {"CreatedAt", "CREATED AT", false}, {"CreatedSince", "CREATED"}, {"Size", "SIZE"},
      {"Containers", "CONTAINERS", false}};
  return print_rows(objects, format, columns);
}

int cmd_inspect(const Globals& g, const std::vector<std::string>& refs, const std::string& format) {
  auto store = open_store(g);
  if (!store) return report(store.error());
  Json out = Json::array();
  int code = 0;
  for (const std::string& ref : refs) {
    if (auto image = store->resolve(ref); image) out.push_back(image_inspect_json(*store, *image));
    else code = report(image.error());
  }
  return print_inspect(out, format, code);
}

int cmd_tag(const Globals& g, const std::string& source, const std::string& target) {
  auto store = open_store(g);
  if (!store) return report(store.error());
  if (auto r = store->tag(source, target); !r) return report(r.error());
  if (auto image = store->resolve(target)) record_named_event(g.root, "image", "tag", image->id.str(), target);
  return 0;
}

int cmd_rmi(const Globals& g, const std::vector<std::string>& refs, bool force) {
  auto store = open_store(g);
  if (!store) return report(store.error());
  int code = 0;
  for (const std::string& ref : refs) {
    auto image = store->resolve(ref);
    auto r = store->remove(ref, force);
    if (!r) {
      code = report(r.error());
      continue;
    }
    for (const std::string& t : r->untagged)
      record_named_event(g.root, "image", "untag", image ? image->id.str() : t, t);
    for (const Digest& d : r->deleted) record_named_event(g.root, "image", "delete", d.str(), d.str());
    for (const std::string& t : r->untagged) std::cout << "Untagged: " << t << "\n";
    for (const Digest& d : r->deleted) std::cout << "Deleted: " << d.str() << "\n";
  }
  return code;
}

int cmd_mount(const Globals& g, const std::string& ref) {
  auto store = open_store(g);
  if (!store) return report(store.error());
  auto path = store->mount(ref);
  if (!path) return report(path.error());
  std::cout << *path << "\n";
  return 0;
}

int cmd_unmount(const Globals& g, const std::string& ref) {
  auto store = open_store(g);
  if (!store) return report(store.error());
  if (auto r = store->unmount(ref); !r) return report(r.error());
  return 0;
}

struct ImageArgs {
  std::string input, format = "table", source, target, ref, output, message, repository, inspect_format;
  std::vector<std::string> refs, changes, filters;
  bool quiet = false, no_trunc = false, force = false;
};

void add_load(CLI::App& parent, Globals& g, std::shared_ptr<ImageArgs> a) {
  auto* cmd = parent.add_subcommand("load", "Load images from an OCI layout or a 'docker save' archive");
  cmd->add_option("-i,--input", a->input, "Archive file or OCI layout directory")->required();
  cmd->add_flag("-q,--quiet", a->quiet, "Print nothing on success");
  cmd->callback([&g, a] { g.action = [&g, a] { return cmd_load(g, a->input, a->quiet); }; });
}

void add_save(CLI::App& parent, Globals& g, std::shared_ptr<ImageArgs> a) {
  auto* cmd = parent.add_subcommand("save", "Write images to an OCI layout tar (also readable by docker load)");
  cmd->add_option("-o,--output", a->output, "File to write ('-': standard output, the default when not a terminal)");
  cmd->add_option("IMAGE", a->refs, "Images (by name: saved under that name)")->required();
  cmd->callback([&g, a] { g.action = [&g, a] { return cmd_save(g, a->refs, a->output); }; });
}

void add_import(CLI::App& parent, Globals& g, std::shared_ptr<ImageArgs> a) {
  auto* cmd = parent.add_subcommand("import", "Make a one-layer image from a root file system tarball");
  cmd->add_option("-c,--change", a->changes, "Apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR, ...)")
      ->allow_extra_args(false);
  cmd->add_option("-m,--message", a->message, "Comment for the image's history");
  cmd->add_option("FILE", a->input, "Tarball (plain, gzip or zstd), or '-' for standard input")->required();
  cmd->add_option("REPOSITORY[:TAG]", a->target, "Name of the new image");
  cmd->callback([&g, a] {
    g.action = [&g, a] { return cmd_import(g, a->input, a->target, a->changes, a->message); };
  });
}

void add_list(CLI::App& parent, const char* name, Globals& g, std::shared_ptr<ImageArgs> a) {
  auto* cmd = parent.add_subcommand(name, "List images");
  cmd->add_flag("-q,--quiet", a->quiet, "Print only image IDs");
  cmd->add_flag("--no-trunc", a->no_trunc, "Print full image IDs");
  cmd->add_option("--format", a->format, "table, json, 'table TEMPLATE' or a Go TEMPLATE");
  cmd->add_option("-f,--filter", a->filters, "Filter KEY=VALUE (reference, label, dangling, before, since)")
      ->allow_extra_args(false);
  cmd->add_option("REPOSITORY", a->repository, "Only images of this REPOSITORY[:TAG] (wildcards allowed)");
  cmd->callback([&g, a] {
    g.action = [&g, a] { return cmd_images(g, a->quiet, a->no_trunc, a->format, a->filters, a->repository); };
  });
}

void add_rmi(CLI::App& parent, const char* name, Globals& g, std::shared_ptr<ImageArgs> a) {
  auto* cmd = parent.add_subcommand(name, "Remove images");
  cmd->add_option("IMAGE", a->refs, "Images to remove")->required();
  cmd->add_flag("-f,--force", a->force, "Remove even when tagged several times or mounted");
  cmd->callback([&g, a] { g.action = [&g, a] { return cmd_rmi(g, a->refs, a->force); }; });
}

void add_tag(CLI::App& parent, Globals& g, std::shared_ptr<ImageArgs> a) {
  auto* cmd = parent.add_subcommand("tag", "Give an image another name");
  cmd->add_option("SOURCE", a->source, "Existing image")->required();
  cmd->add_option("TARGET", a->target, "New NAME[:TAG]")->required();
  cmd->callback([&g, a] { g.action = [&g, a] { return cmd_tag(g, a->source, a->target); }; });
}

}  // namespace

Json image_inspect_json(const ImageStore& store, const ImageRecord& image) {
  auto config = store.config(image);
  Json layers = Json::array();
  for (const Digest& d : image.layers) layers.push_back(d.str());
  return {{"Id", image.id.str()},
          {"RepoTags", image.tags},
          {"Digest", image.manifest.str()},
          {"Created", image.created},
          {"Architecture", config ? json_string_or(*config, "architecture", "") : ""},
          {"Os", config ? json_string_or(*config, "os", "") : ""},
          {"Size", image.size},
          {"Config", config ? config->value("config", Json::object()) : Json::object()},
          {"RootFS", {{"Type", "layers"}, {"Layers", layers}}}};
}

void add_image_commands(CLI::App& app, Globals& g) {
  auto a = std::make_shared<ImageArgs>();
  add_load(app, g, a);
  add_save(app, g, a);
  add_import(app, g, a);
  add_list(app, "images", g, a);
  add_rmi(app, "rmi", g, a);
  add_tag(app, g, a);

  auto* image = app.add_subcommand("image", "Manage images");
  image->require_subcommand(1);
  add_load(*image, g, a);
  add_save(*image, g, a);
  add_import(*image, g, a);
  add_list(*image, "ls", g, a);
  add_rmi(*image, "rm", g, a);
  add_tag(*image, g, a);
  auto* inspect = image->add_subcommand("inspect", "Show images' configuration as JSON");
  inspect->add_option("IMAGE", a->refs, "Images")->required();
  inspect->add_option("-f,--format", a->inspect_format, "Go TEMPLATE for each image");
  inspect->callback([&g, a] { g.action = [&g, a] { return cmd_inspect(g, a->refs, a->inspect_format); }; });
  auto* mount = image->add_subcommand("mount", "Mount an image's merged layers read-only and print the path");
  mount->add_option("IMAGE", a->ref, "Image")->required();
  mount->callback([&g, a] { g.action = [&g, a] { return cmd_mount(g, a->ref); }; });
  auto* unmount = image->add_subcommand("unmount", "Unmount an image mounted with 'isola image mount'");
  unmount->alias("umount");
  unmount->add_option("IMAGE", a->ref, "Image")->required();
  unmount->callback([&g, a] { g.action = [&g, a] { return cmd_unmount(g, a->ref); }; });
}

}  // namespace isola::cli
