// The keel program's subcommands. Each add_* registers a subcommand whose callback stores the
// action that main() runs after parsing; actions return the process exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace keel::cli {

using Action = std::function<int()>;

void add_serve_commands(CLI::App& app, Action& action);  // serve, echo
void add_cat_command(CLI::App& app, Action& action);
void add_bench_command(CLI::App& app, Action& action);  // bench pingpong|connect|idle
void add_ctl_command(CLI::App& app, Action& action);    // ctl list|send|broadcast|kick|stats
void add_exec_command(CLI::App& app, Action& action);   // exec -- PROGRAM [ARGS...]
// doctor [--connections N] [--json]: this machine's limits for a target connection count
void add_doctor_command(CLI::App& app, Action& action);
// ls, get, put: the clients of keel files (cli/files_commands.h)
void add_files_client_commands(CLI::App& app, Action& action);

// Exit codes shared by the subcommands (documented in docs/operations.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // set-up failed: bind, connect, resolve, ...
inline constexpr int kExitUsage = 2;    // bad command line or endpoint text
inline constexpr int kExitBroken = 3;   // connection reset or failed mid-stream
inline constexpr int kExitTimeout = 4;  // a timeout ran out
inline constexpr int kExitVerify = 5;   // keel get / put: the SHA-256 check failed

}  // namespace keel::cli
