#include "cli/server_common.h"

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

}  // namespace keel::cli
