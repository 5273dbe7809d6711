// isola cp, export, diff (also under `container`) and history (also
// `image history`): a container's files and an image's history, as docker's.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <algorithm>
#include <map>
#include <memory>

#include "cli/commands.h"
#include "cli/table.h"
#include "engine/container_files.h"

namespace isola::cli {

namespace {

struct FileArgs {
  std::string src, dest, container, output, image, format = "table";
  bool archive = false, follow_link = false, no_trunc = false, quiet = false, human = true;
};

int cmd_cp(const Globals& g, const FileArgs& a) {
  CopyEndpoint src = parse_copy_endpoint(a.src), dest = parse_copy_endpoint(a.dest);
  if (src.container.empty() == dest.container.empty())
    return report(make_error("cp", a.src + " " + a.dest,
                             src.container.empty() ? "neither side is in a container; write one as CONTAINER:PATH"
                                                   : "copying between containers is not supported; copy through "
                                                     "the host"));
  if (src.stream && dest.stream) return report(make_error("cp", "-", "only one side can be a tar stream"));
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  const CopyEndpoint& in_container = src.container.empty() ? dest : src;
  auto rec = engine->containers().resolve(in_container.container);
  if (!rec) return report(rec.error());
  auto path = container_path(in_container.path, rec->name);
  if (!path) return report(path.error());
  auto root = ContainerRoot::open(*engine, *rec);
  if (!root) return report(root.error());
  FileTree box{root->fd(), root->id_base(), rec->name}, host{};
  CopyOptions options{a.archive, a.follow_link};
  Result<void> done;
  if (!src.container.empty()) {
    done = dest.stream ? copy_to_stream(box, *path, STDOUT_FILENO, a.follow_link)
                       : copy_between(box, *path, host, dest.path, options);
  } else {
    done = src.stream ? copy_from_stream(STDIN_FILENO, box, *path, options)
                      : copy_between(host, src.path, box, *path, options);
  }
  if (!done) return report(done.error());
  return 0;
}

// To a file beside the named one, renamed into place: a failed export leaves nothing.
int cmd_export(const Globals& g, const FileArgs& a) {
  if (a.output.empty() && ::isatty(STDOUT_FILENO))
    return report(make_error("export", "standard output",
                             "it is a terminal; name a file with -o FILE or redirect the output"));
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  auto rec = engine->containers().resolve(a.container);
  if (!rec) return report(rec.error());
  auto root = ContainerRoot::open(*engine, *rec);
  if (!root) return report(root.error());
  FileTree box{root->fd(), root->id_base(), rec->name};
  if (a.output.empty()) {
    if (auto r = export_tree(box, STDOUT_FILENO); !r) return report(r.error());
    return 0;
  }
  // A new name of our own beside the output (O_EXCL: never a file or a
  // link someone planted there), renamed over it once complete.
  std::string tmp = a.output + ".isola-tmp-" + std::to_string(::getpid());
  auto fd = open_path(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644);
  if (!fd) return report(fd.error());
  auto written = export_tree(box, fd->get());
  if (written && ::fsync(fd->get()) != 0) written = fail(sys_error("write", tmp));
  if (written && ::rename(tmp.c_str(), a.output.c_str()) != 0) written = fail(sys_error("rename", a.output));
  if (!written) {
    ::unlink(tmp.c_str());
    return report(written.error());
  }
  return 0;
}

int cmd_diff(const Globals& g, const FileArgs& a) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  auto rec = engine->containers().resolve(a.container);
  if (!rec) return report(rec.error());
  auto changes = container_changes(*engine, *rec);
  if (!changes) return report(changes.error());
  for (const Change& c : *changes) std::cout << c.kind << " " << c.path << "\n";
  return 0;
}

void add_container_file_commands(CLI::App& parent, Globals& g) {
  auto a = std::make_shared<FileArgs>();
  auto* cp = parent.add_subcommand("cp", "Copy files between a container and the host");
  cp->add_flag("-a,--archive", a->archive, "Keep owners (uid/gid) of what is copied");
  cp->add_flag("-L,--follow-link", a->follow_link, "Follow a symlink in SRC_PATH");
  cp->add_option("SRC", a->src, "CONTAINER:SRC_PATH, a local path, or - (a tar on standard input)")->required();
  cp->add_option("DEST", a->dest, "CONTAINER:DEST_PATH, a local path, or - (a tar on standard output)")->required();
  cp->callback([&g, a] { g.action = [&g, a] { return cmd_cp(g, *a); }; });

  auto e = std::make_shared<FileArgs>();
  auto* exp = parent.add_subcommand("export", "Write a container's file system as a tar");
  exp->add_option("-o,--output", e->output, "Write to FILE instead of standard output");
  exp->add_option("CONTAINER", e->container, "Container")->required();
  exp->callback([&g, e] { g.action = [&g, e] { return cmd_export(g, *e); }; });

  auto d = std::make_shared<FileArgs>();
  auto* diff = parent.add_subcommand("diff", "List the files a container added (A), changed (C) or deleted (D)");
  diff->add_option("CONTAINER", d->container, "Container")->required();
  diff->callback([&g, d] { g.action = [&g, d] { return cmd_diff(g, *d); }; });
}

struct HistoryRow {
  std::string id, created, created_by, comment;
  int64_t created_s = -1;
  uint64_t size = 0;
};

// One row per history entry, newest first; an entry that is not an empty
// layer owns the next layer. Only the newest row has an ID: the others
// are not images in the store (docker's "<missing>").
Result<std::vector<HistoryRow>> history_rows(ImageStore& store, const ImageRecord& image, bool no_trunc) {
  Json config = TRY(store.config(image));
  std::map<std::string, uint64_t> sizes = TRY(store.layer_sizes());
  std::vector<HistoryRow> rows;
  size_t layer = 0;
  auto history = config.find("history");
  if (history != config.end() && history->is_array()) {
    for (const Json& h : *history) {
      if (!h.is_object()) continue;
      HistoryRow row{"<missing>", json_string_or(h, "created", ""), json_string_or(h, "created_by", ""),
                     json_string_or(h, "comment", "")};
      row.created_s = parse_rfc3339(row.created);
      auto flag = h.find("empty_layer");
      bool empty = flag != h.end() && flag->is_boolean() && flag->get<bool>();
      if (!empty && layer < image.layers.size()) row.size = sizes[image.layers[layer++].hex];
      rows.push_back(row);
    }
  }
  for (; layer < image.layers.size(); ++layer) {  // layers the history does not describe
    HistoryRow row{"<missing>", "", "", ""};
    row.size = sizes[image.layers[layer].hex];
    rows.push_back(row);
  }
  std::reverse(rows.begin(), rows.end());
  if (!rows.empty()) rows.front().id = no_trunc ? image.id.str() : image.id.short_id();
  return rows;
}

// docker's ellipsis: 45 characters, the last one "…".
std::string truncated(const std::string& s, size_t width) {
  size_t chars = 0, cut = std::string::npos;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;
    if (chars == width - 1) cut = i;
    ++chars;
  }
  if (chars <= width) return s;
  return s.substr(0, cut) + "\u2026";
}

int cmd_history(const Globals& g, const FileArgs& a) {
  if (a.format != "table" && a.format != "json")
    return report(make_error("history", a.format, "unknown --format; use 'table' or 'json'"));
  auto store = ImageStore::open(g.root);
  if (!store) return report(store.error());
  auto image = store->resolve(a.image);
  if (!image) return report(image.error());
  auto rows = history_rows(*store, *image, a.no_trunc);
  if (!rows) return report(rows.error());
  int64_t now = static_cast<int64_t>(::time(nullptr));
  auto since = [&](const HistoryRow& r) {
    if (r.created_s < 0) return std::string("N/A");
    return a.human ? human_ago(r.created_s, now) : r.created;
  };
  auto size = [&](const HistoryRow& r) { return a.human ? human_size(r.size) : std::to_string(r.size); };
  if (a.quiet) {
    for (const HistoryRow& r : *rows) std::cout << r.id << "\n";
    return 0;
  }
  if (a.format == "json") {
    for (const HistoryRow& r : *rows)
      std::cout << Json{{"ID", r.id},          {"CreatedAt", r.created}, {"CreatedSince", since(r)},
                        {"CreatedBy", r.created_by}, {"Size", size(r)},  {"Comment", r.comment}}
                       .dump()
                << "\n";
    return 0;
  }
  Table table({"IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"});
  for (const HistoryRow& r : *rows)
    table.add({r.id, since(r), a.no_trunc ? r.created_by : truncated(r.created_by, 45), size(r), r.comment});
  std::cout << table.render();
  return 0;
}

}  // namespace

void add_file_commands(CLI::App& app, Globals& g) {
  add_container_file_commands(app, g);
  if (CLI::App* container = app.get_subcommand("container")) add_container_file_commands(*container, g);
  auto add_history = [&g](CLI::App& parent) {
    auto a = std::make_shared<FileArgs>();
    auto* cmd = parent.add_subcommand("history", "Show the history of an image");
    cmd->add_flag("--no-trunc", a->no_trunc, "Do not truncate output");
    cmd->add_flag("-q,--quiet", a->quiet, "Print only image IDs");
    cmd->add_flag("-H,--human,!--no-human", a->human, "Sizes and dates in human-readable form (default true)");
    cmd->add_option("--format", a->format, "Output format: table or json");
    cmd->add_option("IMAGE", a->image, "Image")->required();
    cmd->callback([&g, a] {
      g.action = [&g, a] { return cmd_history(g, *a); };
    });
  };
  add_history(app);
  if (CLI::App* image = app.get_subcommand("image")) add_history(*image);
}

}  // namespace isola::cli
