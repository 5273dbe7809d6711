// Registry commands: pull, push, login, logout.
#include <termios.h>
#include <unistd.h>

#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/progress.h"
#include "common/fs.h"
#include "engine/events.h"
#include "registry/pull.h"
#include "registry/push.h"

namespace isola::cli {

namespace {

struct RegistryArgs {
  std::string name, dest, cert_dir, creds, username, password;
  bool tls_verify = true, quiet = false, password_stdin = false;
};

std::string auth_file(const Globals& g) { return path_join(g.root, "auth.json"); }

// TLS settings and credentials for one registry: --creds, else what
// `isola login` stored.
Result<RegistryOptions> registry_options(const Globals& g, const RegistryArgs& a, const std::string& registry) {
  RegistryOptions opts;
  opts.tls.verify = a.tls_verify;
  std::string dir = a.cert_dir.empty() ? "/etc/isola/certs.d/" + registry : a.cert_dir;
  if (path_exists(path_join(dir, "ca.crt"))) opts.tls.ca_file = path_join(dir, "ca.crt");
  else if (!a.cert_dir.empty())
    return fail(make_error("use certificates", a.cert_dir, "no ca.crt in the directory"));
  if (!a.creds.empty()) {
    opts.creds = TRY(parse_creds(a.creds));
  } else {
    opts.creds = TRY(CredentialStore(auth_file(g)).get(registry));
  }
  return opts;
}

void add_registry_flags(CLI::App* cmd, RegistryArgs& a, bool creds) {
  cmd->add_flag("--tls-verify,!--no-tls-verify", a.tls_verify,
                "Verify the registry's TLS certificate (default true; --tls-verify=false to skip)");
  cmd->add_option("--cert-dir", a.cert_dir, "Directory with the registry's CA as ca.crt");
  if (creds) cmd->add_option("--creds", a.creds, "USERNAME:PASSWORD for this command only");
}

// What pull and push both start from: the remote name, the store, and the
// registry's TLS settings and credentials.
struct Transfer {
  RemoteRef ref;
  ImageStore store;
  RegistryOptions registry;
};

Result<Transfer> prepare_transfer(const Globals& g, const RegistryArgs& a, const std::string& remote) {
  RemoteRef ref = TRY(RemoteRef::parse(remote));
  ImageStore store = TRY(ImageStore::open(g.root));
  RegistryOptions registry = TRY(registry_options(g, a, ref.registry));
  return Transfer{std::move(ref), std::move(store), std::move(registry)};
}

void record_pull(const Globals& g, const RemoteRef& ref, const PullResult& pulled) {
  record_named_event(g.root, "image", "pull", pulled.tag.empty() ? ref.str() : pulled.tag, ref.local_repository());
}

int cmd_pull(const Globals& g, const RegistryArgs& a) {
  auto t = prepare_transfer(g, a, a.name);
  if (!t) return report(t.error());
  const RemoteRef* ref = &t->ref;
  auto* store = &t->store;
  PullOptions opts;
  opts.registry = t->registry;
  ProgressView view(a.quiet, ::isatty(STDOUT_FILENO), "Downloading", STDOUT_FILENO);
  opts.observer = [&view](const TransferEvent& ev) { view.on_event(ev); };
  view.say("Pulling " + ref->str());
  auto pulled = pull_image(*store, *ref, opts);
  if (!pulled) return report(pulled.error());
  record_pull(g, *ref, *pulled);
  if (a.quiet) {
    std::cout << pulled->image_id.str() << "\n";
    return 0;
  }
  view.say("Digest: " + pulled->manifest_digest.str());
  view.say("Image: " + (pulled->tag.empty() ? ref->local_repository() + "@" + ref->digest : pulled->tag) +
           " (ID " + pulled->image_id.short_id() + ")");
  return 0;
}

int cmd_push(const Globals& g, const RegistryArgs& a) {
  auto t = prepare_transfer(g, a, a.dest.empty() ? a.name : a.dest);
  if (!t) return report(t.error());
  const RemoteRef* dest = &t->ref;
  const auto* store = &t->store;
  PushOptions opts;
  opts.registry = t->registry;
  ProgressView view(a.quiet, ::isatty(STDOUT_FILENO), "Pushing", STDOUT_FILENO);
  opts.observer = [&view](const TransferEvent& ev) { view.on_event(ev); };
  view.say("Pushing " + (a.dest.empty() ? dest->str() : a.name + " to " + dest->str()));
  auto digest = push_image(*store, a.name, *dest, opts);
  if (!digest) return report(digest.error());
  record_named_event(g.root, "image", "push", dest->str(), dest->local_repository());
  if (a.quiet) std::cout << digest->str() << "\n";
  else view.say("Digest: " + digest->str());
  return 0;
}

// The password: -p, --password-stdin, or a prompt without echo on a terminal.
Result<std::string> read_password(const RegistryArgs& a) {
  if (!a.password.empty()) return a.password;
  if (!a.password_stdin && !::isatty(STDIN_FILENO))
    return fail(make_error("login", "", "no password: give --password-stdin or -p, or run on a terminal"));
  termios saved{};
  bool tty = !a.password_stdin && ::tcgetattr(STDIN_FILENO, &saved) == 0;
  if (tty) {
    std::cerr << "Password: " << std::flush;
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  std::getline(std::cin, line);
  if (tty) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    std::cerr << "\n";
  }
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.empty()) return fail(make_error("login", "", "the password is empty"));
  return line;
}

int cmd_login(const Globals& g, RegistryArgs a) {
  if (a.username.empty()) return report(make_error("login", a.name, "give the user name with -u USERNAME"));
  auto password = read_password(a);
  if (!password) return report(password.error());
  // A repository the registry does not need to have: /v2/ only checks the login.
  auto ref = RemoteRef::parse(a.name + "/login-check");
  if (!ref || ref->registry != a.name)
    return report(make_error("login", a.name, "not a registry host name (e.g. registry.example.com:5000)"));
  Credentials creds{a.username, *password};
  a.creds.clear();
  auto reg = registry_options(g, a, ref->registry);
  if (!reg) return report(reg.error());
  reg->creds = creds;
  RegistryClient client(*ref, *reg, false);
  if (auto r = client.check_login(); !r) return report(r.error());
  if (auto r = CredentialStore(auth_file(g)).put(ref->registry, creds); !r) return report(r.error());
  std::cout << "Login Succeeded\n";
  return 0;
}

int cmd_logout(const Globals& g, const RegistryArgs& a) {
  auto removed = CredentialStore(auth_file(g)).remove(a.name);
  if (!removed) return report(removed.error());
  if (!*removed) return report(make_error("logout", a.name, "not logged in to this registry"));
  std::cout << "Removed login credentials for " << a.name << "\n";
  return 0;
}

}  // namespace

Result<void> ensure_image(const Globals& g, const std::string& image, const std::string& policy) {
  if (policy != "missing" && policy != "always" && policy != "never")
    return fail(make_error("run", "--pull=" + policy, "use missing, always or never"));
  if (policy == "never") return {};
  ImageStore store = TRY(ImageStore::open(g.root));
  if (policy == "missing" && store.resolve(image)) return {};
  auto ref = RemoteRef::parse(image);
  if (!ref) return {};  // not a name (an ID prefix?): create reports it
  if (policy == "missing")
    std::cerr << "Unable to find image '" << image << "' locally; pulling " << ref->str() << "\n";
  RegistryArgs args;
  PullOptions opts;
  opts.registry = TRY(registry_options(g, args, ref->registry));
  ProgressView view(false, ::isatty(STDERR_FILENO), "Downloading", STDERR_FILENO);
  opts.observer = [&view](const TransferEvent& ev) { view.on_event(ev); };
  auto pulled = pull_image(store, *ref, opts);
  if (!pulled) {
    Error e = pulled.error();
    return fail(e.context("image '" + image + "' is not stored locally and pulling it failed"));
  }
  record_pull(g, *ref, *pulled);
  return {};
}

void add_registry_commands(CLI::App& app, Globals& g) {
  auto a = std::make_shared<RegistryArgs>();
  auto add_pull = [&](CLI::App& parent) {
    auto* pull = parent.add_subcommand("pull", "Download an image from a registry");
    pull->add_option("NAME", a->name, "NAME[:TAG|@DIGEST]; short names are Docker Hub's")->required();
    pull->add_flag("-q,--quiet", a->quiet, "Print only the image ID");
    add_registry_flags(pull, *a, true);
    pull->callback([&g, a] { g.action = [&g, a] { return cmd_pull(g, *a); }; });
  };
  auto add_push = [&](CLI::App& parent) {
    auto* push = parent.add_subcommand("push", "Upload an image to a registry");
    push->add_option("IMAGE", a->name, "Local image")->required();
    push->add_option("DESTINATION", a->dest, "REGISTRY/NAME[:TAG] (default: the image's name)");
    push->add_flag("-q,--quiet", a->quiet, "Print only the manifest digest");
    add_registry_flags(push, *a, true);
    push->callback([&g, a] { g.action = [&g, a] { return cmd_push(g, *a); }; });
  };
  add_pull(app);
  add_push(app);
  if (auto image = app.get_subcommand_ptr("image")) {
    add_pull(*image);
    add_push(*image);
  }

  auto* login = app.add_subcommand("login", "Store credentials for a registry (in <root>/auth.json, mode 0600)");
  login->add_option("REGISTRY", a->name, "Registry host[:port]")->required();
  login->add_option("-u,--username", a->username, "User name");
  login->add_option("-p,--password", a->password, "Password (visible to other users in ps; prefer --password-stdin)");
  login->add_flag("--password-stdin", a->password_stdin, "Read the password from stdin");
  add_registry_flags(login, *a, false);
  login->callback([&g, a] { g.action = [&g, a] { return cmd_login(g, *a); }; });

  auto* logout = app.add_subcommand("logout", "Forget the credentials stored for a registry");
  logout->add_option("REGISTRY", a->name, "Registry host[:port]")->required();
  logout->callback([&g, a] { g.action = [&g, a] { return cmd_logout(g, *a); }; });
}

}  // namespace isola::cli
