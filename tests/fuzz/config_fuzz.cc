// libFuzzer: the --config loader (toml++, the key table, the flags' own checks) on arbitrary
// text, applied to a command with the option kinds and checks keel's server flags use (choice,
// range, list, flag, needs). Checks: either a ConfigError naming the file ("fuzz.toml:..."), or
// settings whose --print-config text loads back on a fresh command and prints the same.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "cli/config_file.h"

namespace {

struct Command {
  CLI::App app{"keel"};
  CLI::App* serve = app.add_subcommand("serve");
  std::string model = "reactor", admin = "default", token_file, cert, key, framing = "lines";
  size_t threads = 1, max_connections = 0, max_line = 4096;
  double drain_timeout = 5;
  bool reuse_port = false, proxy = false;
  std::vector<std::string> allow, echo, chat;

  Command() {
    serve->add_option("--model", model)
        ->check(CLI::IsMember({"reactor", "threads", "processes"}))
        ->capture_default_str();
    serve->add_option("--threads", threads)->check(CLI::Range(1, 256))->capture_default_str();
    serve->add_option("--max-connections", max_connections)->capture_default_str();
    serve->add_flag("--reuse-port", reuse_port);
    serve->add_option("--drain-timeout", drain_timeout)
        ->check(CLI::Range(0.0, 3600.0))
        ->capture_default_str();
    serve->add_option("--admin", admin)->default_str("default");
    serve->add_option("--admin-token-file", token_file);
    auto* cert_opt = serve->add_option("--tls-cert", cert);
    auto* key_opt = serve->add_option("--tls-key", key);
    cert_opt->needs(key_opt);
    key_opt->needs(cert_opt);
    auto* proxy_opt = serve->add_flag("--proxy-protocol", proxy);
    serve->add_option("--proxy-allow", allow)->needs(proxy_opt);
    serve->add_option("--echo", echo)->default_str("127.0.0.1:7000");
    serve->add_option("--chat", chat)->default_str("127.0.0.1:7001");
    serve->add_option("--framing", framing)
        ->check(CLI::IsMember({"lines", "length"}))
        ->capture_default_str();
    serve->add_option("--max-line", max_line)
        ->check(CLI::Range(size_t{16}, size_t{16} << 20))
        ->capture_default_str();
  }

  std::string printed() {
    std::ostringstream out;
    keel::cli::print_config(*serve, out);
    return out.str();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string printed;
  {
    Command first;
    try {
      keel::cli::apply_config_text(*first.serve, text, "fuzz.toml");
    } catch (const keel::cli::ConfigError& e) {
      if (!std::string_view(e.what()).starts_with("fuzz.toml:")) std::abort();
      return 0;
    }
    printed = first.printed();
  }
  Command second;
  try {
    keel::cli::apply_config_text(*second.serve, printed, "printed.toml");
  } catch (const keel::cli::ConfigError&) {
    std::abort();  // what --print-config wrote, --config must read
  }
  if (second.printed() != printed) std::abort();
  return 0;
}
