// keel serve/echo/chat/hub --config: every flag has a key, the keys set the flags, the command line
// wins, each kind of bad file is one message naming file, line and key, and --print-config
// prints what --config reads back.
#include "cli/config_file.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace keel::cli {
namespace {

const std::string kExample = std::string(KEEL_SOURCE_DIR) + "/docs/keel.example.toml";
const char* const kCommands[] = {"serve", "echo", "chat", "hub", "files"};

// The keel program's command line, parsed as main() parses it.
struct Cli {
  CLI::App app{"keel"};
  Action action;
  Cli() { add_serve_commands(app, action); }
  void parse(std::vector<std::string> args) {
    args.insert(args.begin(), "keel");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    app.parse(static_cast<int>(argv.size()), argv.data());
  }
  CLI::App& cmd(const std::string& name) { return *app.get_subcommand(name); }
  std::string printed(const std::string& name) {
    std::ostringstream out;
    print_config(cmd(name), out);
    return out.str();
  }
};

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/keel-config-XXXXXX";
    int fd = ::mkstemp(name);
    EXPECT_GE(fd, 0);
    ::close(fd);
    path = name;
    std::ofstream(path) << text;
  }
  ~TempFile() { ::unlink(path.c_str()); }
};

// The message of the ConfigError that `keel <args> --config <file with text>` throws.
std::string config_error(const std::string& text, const std::string& command = "serve",
                         std::vector<std::string> flags = {}) {
  TempFile file(text);
  Cli cli;
  std::vector<std::string> args = {command, "--config", file.path};
  args.insert(args.end(), flags.begin(), flags.end());
  try {
    cli.parse(args);
  } catch (const ConfigError& e) {
    std::string what = e.what();
    if (what.starts_with(file.path)) what.replace(0, file.path.size(), "FILE");
    return what;
  }
  return "no error";
}

bool skipped(const CLI::Option* opt) {
  if (opt->get_lnames().empty() || opt->get_group().empty()) return true;  // hidden
  const std::string& name = opt->get_lnames().front();
  return name == "help" || name == "config" || name == "print-config";
}

TEST(ConfigFile, EveryFlagOfTheServerCommandsHasAKey) {
  Cli cli;
  std::string missing;
  for (const char* name : kCommands)
    for (const CLI::Option* opt : cli.cmd(name).get_options()) {
      if (skipped(opt)) continue;
      bool keyed = false;
      for (const ConfigKey& row : config_keys())
        keyed |= row.flag == opt->get_name() && (row.command.empty() || row.command == name);
      if (!keyed) missing += " keel " + std::string(name) + " " + opt->get_name() + ";";
    }
  EXPECT_EQ(missing, "")
      << "each flag needs a config key: add a row to src/cli/config_keys.cc, a line to the "
         "\"Configuration file\" section of docs/operations.md, and the key to "
         "docs/keel.example.toml";
}

TEST(ConfigFile, EveryKeySetsAFlagOfTheRightKind) {
  Cli cli;
  for (const ConfigKey& row : config_keys()) {
    std::string key = std::string(row.section) + "." + std::string(row.key);
    int commands = 0;
    for (const char* name : kCommands) {
      if (!row.command.empty() && row.command != name) continue;
      CLI::Option* opt = config_option(cli.cmd(name), row.section, row.key);
      if (!opt) continue;
      ++commands;
      EXPECT_EQ(opt->get_name(), row.flag) << key;
      const bool flag = opt->get_expected_max() == 0;
      const bool list = opt->get_expected_max() > 1;
      EXPECT_EQ(flag, row.kind == ConfigKind::boolean) << key;
      EXPECT_EQ(list, row.kind == ConfigKind::strings) << key;
    }
    EXPECT_GT(commands, 0) << key << " sets " << row.flag << ", which no command has";
  }
}

TEST(ConfigFile, EveryKeyIsDocumentedAndInTheExample) {
  std::ifstream docs_file(std::string(KEEL_SOURCE_DIR) + "/docs/operations.md");
  std::stringstream docs, example;
  docs << docs_file.rdbuf();
  example << std::ifstream(kExample).rdbuf();
  for (const ConfigKey& row : config_keys()) {
    std::string key = std::string(row.section) + "." + std::string(row.key);
    EXPECT_NE(docs.str().find("`" + key + "`"), std::string::npos)
        << key << " is not in docs/operations.md";
    std::string line = "\n" + std::string(row.key) + " = ";
    std::string commented = "\n# " + std::string(row.key) + " = ";
    EXPECT_TRUE(example.str().find(line) != std::string::npos ||
                example.str().find(commented) != std::string::npos)
        << key << " is not in docs/keel.example.toml";
  }
}

TEST(ConfigFile, TheExampleFileSetsTheFlags) {
  Cli cli;
  cli.parse({"serve", "--config", kExample});
  CLI::App& serve = cli.cmd("serve");
  EXPECT_EQ(serve.get_option("--threads")->as<size_t>(), 2u);
  EXPECT_EQ(serve.get_option("--max-connections")->as<size_t>(), 10000u);
  EXPECT_EQ(serve.get_option("--admin")->as<std::string>(), "unix:./keel-admin.sock");
  EXPECT_EQ(serve.get_option("--echo")->as<std::vector<std::string>>(),
            (std::vector<std::string>{"127.0.0.1:7000", "udp:127.0.0.1:7000"}));
  EXPECT_EQ(serve.get_option("--chat")->as<std::vector<std::string>>(),
            (std::vector<std::string>{"127.0.0.1:7001"}));
  EXPECT_EQ(serve.get_option("--framing")->as<std::string>(), "lines");
  EXPECT_FALSE(print_config_requested(serve));
}

TEST(ConfigFile, TheCommandLineWinsOverTheFile) {
  TempFile file(
      "[server]\nthreads = 3\nreuse-port = true\n[timeouts]\ndrain = 2\n"
      "[echo]\nlisten = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n[chat]\nmax-line = 100\n");
  Cli cli;
  cli.parse({"serve", "--config", file.path, "--threads", "5", "--echo", "127.0.0.1:9"});
  CLI::App& serve = cli.cmd("serve");
  EXPECT_EQ(serve.get_option("--threads")->as<size_t>(), 5u);  // the flag
  EXPECT_TRUE(serve.get_option("--reuse-port")->as<bool>());   // the file
  EXPECT_EQ(serve.get_option("--drain-timeout")->as<double>(), 2.0);
  EXPECT_EQ(serve.get_option("--max-line")->as<size_t>(), 100u);
  // A list flag replaces the file's list rather than adding to it.
  EXPECT_EQ(serve.get_option("--echo")->as<std::vector<std::string>>(),
            (std::vector<std::string>{"127.0.0.1:9"}));
  EXPECT_EQ(serve.get_option("--chat")->count(), 0u);  // neither: the default
}

TEST(ConfigFile, ListenIsTheListenFlagOfASingleServiceCommand) {
  TempFile file("[echo]\nlisten = \"127.0.0.1:5\"\nhigh-water = 4096\n");
  Cli cli;
  cli.parse({"echo", "--config", file.path});
  EXPECT_EQ(cli.cmd("echo").get_option("--listen")->as<std::vector<std::string>>(),
            (std::vector<std::string>{"127.0.0.1:5"}));
  EXPECT_EQ(cli.cmd("echo").get_option("--high-water")->as<size_t>(), 4096u);
}

TEST(ConfigFile, AFlagAndTheFileTogetherMeetANeed) {
  TempFile cert("not read before serving");
  TempFile file("[tls]\ncert = \"" + cert.path + "\"\n");
  Cli cli;
  cli.parse({"serve", "--config", file.path, "--tls-key", cert.path});
  EXPECT_EQ(cli.cmd("serve").get_option("--tls-cert")->as<std::string>(), cert.path);
  EXPECT_EQ(config_error("[tls]\ncert = \"" + cert.path + "\"\n"),
            "FILE:2: tls.cert: needs tls.key as well (or --tls-key)");
}

TEST(ConfigFile, AMissingFileNamesIt) {
  Cli cli;
  try {
    cli.parse({"serve", "--config", "/nonexistent/keel.toml"});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "open config /nonexistent/keel.toml: No such file or directory");
  }
}

TEST(ConfigFile, ASyntaxErrorNamesLineAndColumn) {
  EXPECT_EQ(config_error("[server]\nthreads = 2\nmodel = \n"),
            "FILE:3:9: Error while parsing key-value pair: expected value, saw '\\n'");
  EXPECT_TRUE(config_error("[server]\nthreads = 2\nthreads = 3\n").starts_with("FILE:3:"));
}

TEST(ConfigFile, AnUnknownKeyOrTableNamesIt) {
  EXPECT_EQ(config_error("\n[server]\nthread = 2\n"),
            "FILE:3: server.thread: unknown key (the keys of [server] are model, threads, "
            "workers, reuse-port, io)");
  EXPECT_TRUE(config_error("[servers]\nthreads = 2\n")
                  .starts_with("FILE:1: servers: unknown table (the tables are [server], "));
  EXPECT_TRUE(config_error("threads = 2\n")
                  .starts_with("FILE:1: threads: unknown key (every setting is in a table: "));
  EXPECT_EQ(config_error("[server]\nthreads = 2\n[server.extra]\nx = 1\n"),
            "FILE:3: server.extra: unknown key (the keys of [server] are model, threads, "
            "workers, reuse-port, io)");
}

TEST(ConfigFile, AWrongTypeNamesKeyAndLine) {
  EXPECT_EQ(config_error("[server]\nmodel = \"threads\"\nthreads = \"2\"\n"),
            "FILE:3: server.threads: expected an integer, got a string");
  EXPECT_EQ(config_error("[server]\nreuse-port = 1\n"),
            "FILE:2: server.reuse-port: expected a boolean (true or false), got an integer");
  EXPECT_EQ(config_error("[timeouts]\ndrain = \"5s\"\n"),
            "FILE:2: timeouts.drain: expected a number, got a string");
  EXPECT_EQ(config_error("[chat]\nlisten = [\"127.0.0.1:1\",\n  7002]\n"),
            "FILE:3: chat.listen: expected an array of strings, element 2 is an integer");
  EXPECT_EQ(config_error("server = 1\n"), "FILE:1: server: expected a table [server], got a value");
  // Checked even when the command line overrides the value.
  EXPECT_EQ(config_error("[server]\nthreads = 2.5\n", "serve", {"--threads", "2"}),
            "FILE:2: server.threads: expected an integer, got a floating-point");
}

TEST(ConfigFile, AValueTheFlagRefusesNamesKeyAndLine) {
  EXPECT_EQ(config_error("[server]\nthreads = 0\n"),
            "FILE:2: server.threads: Value 0 not in range 1 to 256");
  EXPECT_EQ(config_error("[limits]\nmax-connections = -1\n"),
            "FILE:2: limits.max-connections: expected an integer of 0 or more, got -1");
  EXPECT_TRUE(config_error("[chat]\nframing = \"words\"\n").starts_with("FILE:2: chat.framing: "));
  EXPECT_EQ(config_error("[proxy]\nenabled = true\nallow = [\"10.0.0.0/33\"]\n"),
            "FILE:3: proxy.allow: CIDR '10.0.0.0/33': prefix length must be a number from 0 to 32");
  EXPECT_TRUE(
      config_error("[tls]\ncert = \"/nonexistent.pem\"\n").starts_with("FILE:2: tls.cert: "));
  // A check that names its flag itself is not named twice.
  EXPECT_EQ(config_error("[timeouts]\nkeepalive = \"1,2\"\n"),
            "FILE:2: timeouts.keepalive: expected three values IDLE,INTERVAL,COUNT, got '1,2'");
}

TEST(ConfigFile, AKeyOfAnotherCommandIsAnError) {
  EXPECT_EQ(config_error("[chat]\nframing = \"length\"\n", "echo"),
            "FILE:2: chat.framing: not a setting of keel echo");
}

TEST(ConfigFile, PrintConfigReadsBackTheSame) {
  Cli first;
  first.parse({"serve", "--config", kExample, "--threads", "3", "--admin-token-file",
               "/tmp/odd \"name\"\\x", "--proxy-protocol", "--proxy-allow", "10.0.0.0/8",
               "--drain-timeout", "0.25", "--print-config"});
  EXPECT_TRUE(print_config_requested(first.cmd("serve")));
  std::string printed = first.printed("serve");
  EXPECT_NE(printed.find("\nthreads = 3\n"), std::string::npos) << printed;
  EXPECT_NE(printed.find("\nmax-connections = 10000\n"), std::string::npos) << printed;
  EXPECT_NE(printed.find("\ndrain = 0.25\n"), std::string::npos) << printed;
  EXPECT_NE(printed.find("\nlisten = [\"127.0.0.1:7000\", \"udp:127.0.0.1:7000\"]\n"),
            std::string::npos)
      << printed;
  EXPECT_NE(printed.find("\n# cert is not set\n"), std::string::npos) << printed;

  TempFile file(printed);
  Cli second;
  second.parse({"serve", "--config", file.path});
  EXPECT_EQ(second.printed("serve"), printed);
  EXPECT_EQ(second.cmd("serve").get_option("--admin-token-file")->as<std::string>(),
            "/tmp/odd \"name\"\\x");
}

TEST(ConfigFile, PrintConfigOfDefaultsReadsBackForEveryCommand) {
  for (const char* name : kCommands) {
    Cli first;
    first.parse({name});
    std::string printed = first.printed(name);
    TempFile file(printed);
    Cli second;
    second.parse({name, "--config", file.path});
    EXPECT_EQ(second.printed(name), printed) << name;
  }
}

}  // namespace
}  // namespace keel::cli
