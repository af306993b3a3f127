// keel serve/echo/chat --config FILE: a TOML file whose keys set the same options as the command
// line (each key mirrors one flag, listed once in config_keys.cc), and --print-config, which
// prints the effective settings as a file --config accepts back. A flag given on the command line
// wins over the file; the file wins over the defaults.
// Thread safety: call from the main thread while parsing the command line.
#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace keel::cli {

// A bad config file: the message names the file, the line (when there is one) and the key, as
// "keel.toml:12: server.threads: Value 0 not in range 1 to 256". keel exits with kExitUsage.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class ConfigKind { boolean, integer, number, string, strings };

// One config key and the long flag it sets. A row with a command applies to that subcommand
// only (the listen keys are --echo/--chat under serve and --listen under echo/chat).
struct ConfigKey {
  std::string_view section;
  std::string_view key;
  std::string_view flag;
  ConfigKind kind;
  std::string_view command = {};
};

// Every config key, in the order --print-config prints them (config_keys.cc).
std::span<const ConfigKey> config_keys();

// The option of `cmd` that section.key sets, or nullptr when the key is not one of cmd's.
CLI::Option* config_option(CLI::App& cmd, std::string_view section, std::string_view key);

// Adds --config FILE and --print-config to `cmd` (a subcommand whose other options are already
// added). The file is read while the command line is processed, before CLI11 checks which
// options need which, and sets every keyed option the command line did not give.
// Throws ConfigError from CLI::App::parse for a bad file.
void add_config_flags(CLI::App& cmd);

// Whether `keel <cmd> --print-config` was asked for.
bool print_config_requested(const CLI::App& cmd);

// Applies the TOML text of `source_name` to the options of `cmd` that have no value yet.
// Throws ConfigError.
void apply_config_text(CLI::App& cmd, std::string_view text, const std::string& source_name);
void apply_config_file(CLI::App& cmd, const std::string& path);

// Writes cmd's effective settings (command line, then file, then defaults) as TOML.
void print_config(const CLI::App& cmd, std::ostream& out);

}  // namespace keel::cli
