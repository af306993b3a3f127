// keel ls, get, put: their flags, keel ls itself, and what the three share.
#include "cli/files_commands.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/transfer_progress.h"
#include "cli/validators.h"

namespace keel::cli {
namespace {

using files::Reply;
using files::Type;

struct LsFlags {
  FilesClientOptions client;
  std::string dir;
  bool json = false;
};

const char* kind_name(files::Kind kind) {
  switch (kind) {
    case files::Kind::file: return "file";
    case files::Kind::directory: return "directory";
    case files::Kind::other: return "other";
  }
  return "other";
}

std::string local_time(int64_t mtime_ns) {
  std::time_t t = static_cast<std::time_t>(mtime_ns / 1000000000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
  return buf;
}

int run_ls(const LsFlags& f) {
  FilesClient client(f.client);
  files::Request r;
  r.type = Type::list;
  r.path = f.dir;
  client.request(r);
  nlohmann::json entries = nlohmann::json::array();
  for (;;) {
    Reply reply = client.reply();
    if (reply.type == Type::error) fail_with(reply, "ls " + (f.dir.empty() ? "." : f.dir));
    if (reply.type == Type::list_end) {
      if (f.json) {
        nlohmann::json j = {{"dir", f.dir}, {"entries", entries}, {"truncated", reply.truncated}};
        std::printf("%s\n", j.dump().c_str());
      } else if (reply.truncated) {
        std::fprintf(stderr, "keel ls: the server listed only the first %llu entries\n",
                     static_cast<unsigned long long>(reply.count));
      }
      return kExitOk;
    }
    if (reply.type != Type::entry) throw TransferFailed(kExitBroken, "ls: unexpected reply");
    if (f.json) {
      entries.push_back({{"name", reply.name},
                         {"kind", kind_name(reply.kind)},
                         {"size", reply.size},
                         {"mtime_ns", reply.mtime_ns}});
      continue;
    }
    bool dir = reply.kind == files::Kind::directory;
    std::printf("%c %12s  %s  %s%s\n",
                dir                               ? 'd'
                : reply.kind == files::Kind::file ? '-'
                                                  : '?',
                dir ? "-" : std::to_string(reply.size).c_str(), local_time(reply.mtime_ns).c_str(),
                reply.name.c_str(), dir ? "/" : "");
  }
}

void add_client_flags(CLI::App& cmd, FilesClientOptions& o) {
  cmd.add_option("endpoint", o.target, "The keel files server: HOST:PORT, [IPv6]:PORT, unix:/path")
      ->required();
  cmd.add_option("--connect-timeout", o.connect_timeout_ms, "Milliseconds to wait for connect")
      ->check(CLI::Range(1, 3600 * 1000))
      ->capture_default_str();
  cmd.add_option("--timeout", o.io_timeout_s,
                 "Give up when the server makes no progress for this many seconds")
      ->check(FiniteRange(0.001, 86400.0))
      ->capture_default_str();
  add_client_tls_flags(cmd, o.tls);
}

constexpr const char* kExitFooter =
    "Exit status: 0 done (and verified), 1 refused by the server (not found, not allowed,\n"
    "exists, ...) or a local error, 2 usage, 3 the connection broke (the part file is kept:\n"
    "run again with --resume), 4 a timeout, 5 the SHA-256 check failed.";

// Runs a command, turning its failure into one line on stderr and the exit code.
template <class Fn>
int report(const char* name, Fn&& fn) {
  try {
    return fn();
  } catch (const TransferFailed& e) {
    std::fprintf(stderr, "keel %s: %s\n", name, e.what());
    return e.exit_code();
  }
}

}  // namespace

std::string last_component(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool show_progress(bool json, bool quiet) {
  return !json && !quiet && ::isatty(2);
}

void add_files_client_commands(CLI::App& app, Action& action) {
  auto ls = std::make_shared<LsFlags>();
  CLI::App* ls_cmd = app.add_subcommand("ls", "List a directory of a keel files server");
  add_client_flags(*ls_cmd, ls->client);
  ls_cmd->add_option("dir", ls->dir, "Directory beneath the served root (default: the root)");
  ls_cmd->add_flag("--json", ls->json, "One JSON object: the entries and whether the list is cut");
  ls_cmd->footer(kExitFooter);
  ls_cmd->callback(
      [&action, ls] { action = [ls] { return report("ls", [&] { return run_ls(*ls); }); }; });

  auto get = std::make_shared<GetFlags>();
  CLI::App* get_cmd = app.add_subcommand(
      "get", "Download a file from a keel files server, verified by SHA-256 (resumable)");
  add_client_flags(*get_cmd, get->client);
  get_cmd->add_option("remote", get->remote, "Path beneath the served root")->required();
  get_cmd->add_option("local", get->local,
                      "Where to save it (default: the remote name, here; a directory: in it)");
  get_cmd->add_flag("--resume", get->resume,
                    "Continue LOCAL.keel-part if the server confirms its bytes (else start over)");
  get_cmd->add_flag("-f,--force", get->force, "Replace LOCAL if it exists");
  get_cmd->add_flag("--json", get->json, "Print a JSON summary on stdout (no progress line)");
  get_cmd->add_flag("-q,--quiet", get->quiet, "No progress line and no summary");
  get_cmd->footer(kExitFooter);
  get_cmd->callback(
      [&action, get] { action = [get] { return report("get", [&] { return run_get(*get); }); }; });

  auto put = std::make_shared<PutFlags>();
  CLI::App* put_cmd = app.add_subcommand(
      "put", "Upload a file to a keel files server (--writable), verified by SHA-256 (resumable)");
  add_client_flags(*put_cmd, put->client);
  put_cmd->add_option("local", put->local, "The file to send")
      ->required()
      ->check(CLI::ExistingFile);
  put_cmd->add_option("remote", put->remote,
                      "Path beneath the served root (default: the local file's name)");
  put_cmd->add_flag("--resume", put->resume,
                    "Continue the server's partial upload if its bytes are this file's");
  put_cmd->add_flag("-f,--force", put->force, "Replace the remote file if it exists");
  put_cmd->add_flag("--json", put->json, "Print a JSON summary on stdout (no progress line)");
  put_cmd->add_flag("-q,--quiet", put->quiet, "No progress line and no summary");
  put_cmd->footer(kExitFooter);
  put_cmd->callback(
      [&action, put] { action = [put] { return report("put", [&] { return run_put(*put); }); }; });
}

}  // namespace keel::cli
