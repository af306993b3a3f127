#include "cli/server_common.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <ctime>
#include <fstream>

#include "keel/error.h"

namespace keel::cli {

std::optional<AdminOptions> admin_options(const std::string& admin, const std::string& token_file) {
  if (admin == "none") return std::nullopt;
  AdminOptions o;
  o.endpoint = Endpoint::parse(admin == "default" ? default_admin_endpoint() : admin);
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    std::string token;
    if (!in || !std::getline(in, token) || token.empty())
      throw Error("admin token file " + token_file + ": missing, unreadable or empty");
    o.token = token;
  }
  return o;
}

sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int wait_for_signal(const sigset_t& set, const std::function<void()>& every) {
  const timespec second{1, 0};
  for (;;) {
    int signal_number = ::sigtimedwait(&set, nullptr, &second);
    if (signal_number > 0) return signal_number;
    every();  // EAGAIN (a second passed) or EINTR
  }
}

RefusalLog::RefusalLog(std::string service, size_t max_connections, size_t max_connections_per_ip) {
  auto make = [&service](Refusal reason, size_t limit) {
    std::string why = to_string(reason);
    if (limit) why += " (" + std::to_string(limit) + ")";
    auto format = [prefix = service + ": refused ", why](uint64_t count, double seconds) {
      char span[32];
      std::snprintf(span, sizeof span, "%.1f", seconds);
      if (count == 1) return prefix + "a connection: " + why;
      return prefix + std::to_string(count) + " connections in the last " + span + " s: " + why;
    };
    return std::make_unique<RateLimitedLog>(
        format, [](const std::string& line) { spdlog::warn("{}", line); });
  };
  logs_[static_cast<size_t>(Refusal::max_connections)] =
      make(Refusal::max_connections, max_connections);
  logs_[static_cast<size_t>(Refusal::per_address)] =
      make(Refusal::per_address, max_connections_per_ip);
  logs_[static_cast<size_t>(Refusal::fd_exhaustion)] = make(Refusal::fd_exhaustion, 0);
}

void RefusalLog::tick(bool force) {
  for (auto& log : logs_) log->tick(force);
}

}  // namespace keel::cli
