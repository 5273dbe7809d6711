// isola commit (and container commit): a container's changes as a new image.
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "engine/engine.h"

namespace isola::cli {

namespace {

struct CommitArgs {
  std::string container, tag, author, message;
  std::vector<std::string> changes;
  bool pause = true;
};

int cmd_commit(const Globals& g, const CommitArgs& a) {
  auto engine = Engine::open(g.root);
  if (!engine) return report(engine.error());
  auto rec = engine->containers().resolve(a.container);
  if (!rec) return report(rec.error());
  NewImage spec;
  spec.tag = a.tag;
  spec.changes = a.changes;
  spec.comment = a.message;
  spec.author = a.author;
  spec.created_by = "isola commit " + rec->name;
  auto made = engine->commit(*rec, spec);
  if (!made) return report(made.error());
  std::cout << made->id.str() << "\n";
  return 0;
}

void add_commit(CLI::App& parent, Globals& g) {
  auto a = std::make_shared<CommitArgs>();
  auto* cmd = parent.add_subcommand("commit", "Create a new image from a container's changes");
  cmd->add_option("-a,--author", a->author, "Author of the new image");
  cmd->add_option("-c,--change", a->changes, "Apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR, ...)")
      ->allow_extra_args(false);
  cmd->add_option("-m,--message", a->message, "Commit message (the history entry's comment)");
  // Accepted for docker's command lines; isola never pauses (see docs/images.md).
  cmd->add_flag("-p,--pause,!--no-pause", a->pause, "Ignored: the container is not paused");
  cmd->add_option("CONTAINER", a->container, "Container")->required();
  cmd->add_option("REPOSITORY[:TAG]", a->tag, "Name of the new image");
  cmd->callback([&g, a] { g.action = [&g, a] { return cmd_commit(g, *a); }; });
}

}  // namespace

void add_commit_commands(CLI::App& app, Globals& g) {
  add_commit(app, g);
  if (CLI::App* container = app.get_subcommand("container")) add_commit(*container, g);
}

}  // namespace isola::cli
