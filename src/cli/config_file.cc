#include "cli/config_file.h"

#include <errno.h>
#include <fmt/format.h>
#include <string.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <ostream>
#include <sstream>
#include <vector>

namespace keel::cli {

namespace {

bool applies_to(const ConfigKey& row, const CLI::App& cmd) {
  return row.command.empty() || row.command == cmd.get_name();
}

const CLI::Option* option_of(const CLI::App& cmd, const ConfigKey& row) {
  if (!applies_to(row, cmd)) return nullptr;
  return cmd.get_option_no_throw(std::string(row.flag));
}

const ConfigKey* row_of(const CLI::App& cmd, std::string_view section, std::string_view key) {
  for (const ConfigKey& row : config_keys())
    if (row.section == section && row.key == key && option_of(cmd, row)) return &row;
  return nullptr;
}

// "[server], [limits], ..." or "model, threads, ..." for the error that names an unknown key.
std::string known_names(std::string_view section) {
  std::vector<std::string_view> names;
  for (const ConfigKey& row : config_keys()) {
    std::string_view name = section.empty() ? row.section : row.key;
    if (!section.empty() && row.section != section) continue;
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  std::string text;
  for (std::string_view name : names) {
    if (!text.empty()) text += ", ";
    text += section.empty() ? "[" + std::string(name) + "]" : std::string(name);
  }
  return text;
}

bool known_section(std::string_view section) {
  for (const ConfigKey& row : config_keys())
    if (row.section == section) return true;
  return false;
}

bool known_key(std::string_view section, std::string_view key) {
  for (const ConfigKey& row : config_keys())
    if (row.section == section && row.key == key) return true;
  return false;
}

std::string_view kind_name(ConfigKind kind) {
  switch (kind) {
    case ConfigKind::boolean: return "a boolean (true or false)";
    case ConfigKind::integer: return "an integer";
    case ConfigKind::number: return "a number";
    case ConfigKind::string: return "a string";
    case ConfigKind::strings: return "an array of strings";
  }
  return "?";
}

// "an integer", "a string", "an array", ... as TOML calls them.
std::string type_name(const toml::node& node) {
  std::ostringstream out;
  out << node.type();
  std::string name = out.str();
  return (std::string_view("aeiou").find(name[0]) != std::string_view::npos ? "an " : "a ") + name;
}

struct Where {
  const std::string& file;
  const toml::source_region& region;
};

[[noreturn]] void fail(Where where, std::string_view key, std::string_view what) {
  throw ConfigError(fmt::format("{}:{}: {}: {}", where.file, where.region.begin.line, key, what));
}

std::string number_text(double value) {
  std::string text = fmt::format("{}", value);
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";  // 5 -> 5.0; inf, nan stay
  return text;
}

// The node's value as the strings CLI11 parses from a command line, or fail() naming the type.
std::vector<std::string> flag_values(const toml::node& node, ConfigKind kind, Where where,
                                     std::string_view key) {
  auto wrong = [&](const toml::node& bad) {
    fail(where, key, fmt::format("expected {}, got {}", kind_name(kind), type_name(bad)));
  };
  switch (kind) {
    case ConfigKind::boolean:
      if (auto b = node.value_exact<bool>()) return {*b ? "true" : "false"};
      break;
    case ConfigKind::integer:
      if (auto i = node.value_exact<int64_t>()) return {std::to_string(*i)};
      break;
    case ConfigKind::number:
      if (node.is_integer()) return {std::to_string(*node.value_exact<int64_t>())};
      if (auto d = node.value_exact<double>()) return {number_text(*d)};
      break;
    case ConfigKind::string:
      if (auto s = node.value_exact<std::string>()) return {*s};
      break;
    case ConfigKind::strings: {
      if (auto s = node.value_exact<std::string>()) return {*s};
      const toml::array* array = node.as_array();
      if (!array) break;
      std::vector<std::string> values;
      for (const toml::node& item : *array) {
        auto s = item.value_exact<std::string>();
        if (!s)
          fail(Where{where.file, item.source()}, key,
               fmt::format("expected an array of strings, element {} is {}", values.size() + 1,
                           type_name(item)));
        values.push_back(*s);
      }
      return values;
    }
  }
  wrong(node);
  return {};
}

// CLI11 says "--threads: Value 0 not in range 1 to 256", and a flag's own check may name it
// again ("--keepalive: --keepalive: expected ..."); the key already names the setting.
std::string without_flag_name(std::string what, const CLI::Option& opt) {
  const std::string prefix = opt.get_name() + ": ";
  while (what.starts_with(prefix)) what.erase(0, prefix.size());
  return what;
}

std::string key_of(const CLI::App& cmd, const CLI::Option* opt) {
  for (const ConfigKey& row : config_keys())
    if (option_of(cmd, row) == opt) return fmt::format("{}.{}", row.section, row.key);
  return opt->get_name();
}

void set_option(CLI::Option& opt, std::vector<std::string> values, Where where,
                std::string_view key) {
  try {
    opt.add_result(std::move(values));
    opt.run_callback();  // runs the flag's own checks (ranges, choices, files) and stores it
  } catch (const CLI::ParseError& e) {
    fail(where, key, without_flag_name(e.what(), opt));
  }
}

std::string toml_string(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\u{:04X}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// One "key = value" line of --print-config, from the command line's or the file's value, else
// the flag's default.
std::string setting_line(const ConfigKey& row, const CLI::Option& opt) {
  const bool given = opt.count() > 0;
  const std::string key(row.key);
  if (!given && opt.get_default_str().empty() && row.kind != ConfigKind::boolean &&
      row.kind != ConfigKind::strings)
    return "# " + key + " is not set";
  switch (row.kind) {
    case ConfigKind::boolean: return key + " = " + (given && opt.as<bool>() ? "true" : "false");
    case ConfigKind::integer: return key + " = " + std::to_string(opt.as<int64_t>());
    case ConfigKind::number: return key + " = " + number_text(opt.as<double>());
    case ConfigKind::string: return key + " = " + toml_string(opt.as<std::string>());
    case ConfigKind::strings: {
      std::vector<std::string> values = opt.results();
      if (!given && !opt.get_default_str().empty()) values = {opt.get_default_str()};
      std::string text = key + " = [";
      for (size_t i = 0; i < values.size(); ++i)
        text += std::string(i ? ", " : "") + toml_string(values[i]);
      return text + "]";
    }
  }
  return "";
}

}  // namespace

CLI::Option* config_option(CLI::App& cmd, std::string_view section, std::string_view key) {
  const ConfigKey* row = row_of(cmd, section, key);
  return row ? cmd.get_option_no_throw(std::string(row->flag)) : nullptr;
}

void apply_config_text(CLI::App& cmd, std::string_view text, const std::string& source_name) {
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("{}:{}:{}: {}", source_name, e.source().begin.line,
                                  e.source().begin.column, e.description()));
  }
  struct Applied {
    CLI::Option* opt;
    std::string key;
    toml::source_region region;
  };
  std::vector<Applied> applied;
  for (auto&& [section_key, section_node] : root) {
    const std::string section(section_key.str());
    Where at_section{source_name, section_key.source()};
    if (!known_section(section))
      fail(at_section, section,
           section_node.is_table()
               ? "unknown table (the tables are " + known_names({}) + ")"
               : "unknown key (every setting is in a table: " + known_names({}) + ")");
    const toml::table* table = section_node.as_table();
    if (!table) fail(at_section, section, "expected a table [" + section + "], got a value");
    for (auto&& [key, node] : *table) {
      const std::string dotted = section + "." + std::string(key.str());
      Where at_key{source_name, key.source()};
      if (!known_key(section, key.str()))
        fail(at_key, dotted,
             "unknown key (the keys of [" + section + "] are " + known_names(section) + ")");
      const ConfigKey* row = row_of(cmd, section, key.str());
      if (!row) fail(at_key, dotted, "not a setting of keel " + cmd.get_name());
      Where at_value{source_name, node.source()};
      std::vector<std::string> values = flag_values(node, row->kind, at_value, dotted);
      CLI::Option* opt = cmd.get_option_no_throw(std::string(row->flag));
      // On a command line CLI11 reads "-1" into an unsigned flag as 2^64 - 1.
      if (row->kind == ConfigKind::integer && opt->get_type_name() == "UINT" &&
          node.value_exact<int64_t>() < 0)
        fail(at_value, dotted, "expected an integer of 0 or more, got " + values[0]);
      if (opt->count() > 0 || values.empty()) continue;  // the command line wins; [] = default
      set_option(*opt, std::move(values), at_value, dotted);
      applied.push_back({opt, dotted, node.source()});
    }
  }
  // CLI11 checks the same later, but would name flags rather than this file's keys.
  for (const Applied& a : applied)
    for (const CLI::Option* need : a.opt->get_needs())
      if (need->count() == 0)
        fail(Where{source_name, a.region}, a.key,
             fmt::format("needs {} as well (or {})", key_of(cmd, need), need->get_name()));
}

void apply_config_file(CLI::App& cmd, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(fmt::format("open config {}: {}", path, strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(fmt::format("read config {}: {}", path, strerror(errno)));
  apply_config_text(cmd, text.str(), path);
}

void add_config_flags(CLI::App& cmd) {
  // An option callback runs while CLI11 processes the parsed command line: after every flag
  // given is known (so the file fills only the others) and before it checks --x needs --y.
  cmd.add_option_function<std::string>(
         "--config", [&cmd](const std::string& path) { apply_config_file(cmd, path); },
         "TOML file of settings, one key per flag (docs/operations.md); flags given on the "
         "command line win")
      ->type_name("FILE");
  cmd.add_flag("--print-config")
      ->description(
          "Print the effective settings (flags, then --config, then defaults) as a --config "
          "file, and exit");
}

bool print_config_requested(const CLI::App& cmd) {
  const CLI::Option* opt = cmd.get_option_no_throw("--print-config");
  return opt && opt->count() > 0;
}

void print_config(const CLI::App& cmd, std::ostream& out) {
  out << "# keel " << cmd.get_name()
      << ": effective settings (flags, then --config, then defaults)\n";
  std::string_view section;
  for (const ConfigKey& row : config_keys()) {
    const CLI::Option* opt = option_of(cmd, row);
    if (!opt) continue;
    if (row.section != section) {
      section = row.section;
      out << "\n[" << section << "]\n";
    }
    out << setting_line(row, *opt) << "\n";
  }
}

}  // namespace keel::cli
