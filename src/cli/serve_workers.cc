#include "cli/serve_workers.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <iterator>

#include "engine/workers.h"
#include "keel/error.h"

namespace keel::cli {
namespace {

// This process's own argv, as the kernel has it (CLI11 does not keep it).
std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  size_t start = 0;
  for (size_t i = 0; i < all.size(); ++i)
    if (all[i] == '\0') {
      args.push_back(all.substr(start, i - start));
      start = i + 1;
    }
  if (args.empty()) throw Error("workers: cannot read /proc/self/cmdline");
  return args;
}

bool parse_size(std::string_view text, size_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

}  // namespace

std::optional<WorkerRole> parse_worker_role(const std::string& text) {
  if (text.empty()) return std::nullopt;
  WorkerRole role;
  size_t colon = text.find(':');
  if (colon == std::string::npos ||
      !parse_size(std::string_view(text).substr(0, colon), role.service) ||
      !parse_size(std::string_view(text).substr(colon + 1), role.slot))
    throw Error(std::string(kWorkerFlag) + " " + text +
                ": set by keel --workers for its worker processes, as SERVICE:SLOT");
  return role;
}

void check_workers_fit(const std::vector<const Service*>& services) {
  for (const Service* s : services)
    if (!s->connections_independent())
      throw Error(std::string(s->name()) +
                  " shares state across connections: --workers needs a service like echo");
}

std::unique_ptr<Engine> make_workers_engine(size_t index, size_t workers,
                                            std::vector<Endpoint> listen, Service& service) {
  WorkersOptions o;
  o.workers = workers;
  o.listen = std::move(listen);
  o.worker_argv = [argv = own_command_line(), index](size_t slot) {
    std::vector<std::string> args = argv;
    args.push_back(kWorkerFlag);
    args.push_back(std::to_string(index) + ":" + std::to_string(slot));
    return args;
  };
  return std::make_unique<WorkersEngine>(std::move(o), service);
}

void label_worker_logs(const WorkerRole& role) {
  spdlog::default_logger()->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ worker " +
                                        std::to_string(role.slot) + " (pid " +
                                        std::to_string(::getpid()) + "): %v");
}

}  // namespace keel::cli
