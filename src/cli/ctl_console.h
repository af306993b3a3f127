// keel ctl's operator console: `keel ctl` with no subcommand. On a terminal, a prompt with line
// editing, history and completion (libedit); from a pipe, the same commands one per line.
// Commands: list, attach, send, broadcast, kick, stats, watch, help, quit (docs/operations.md).
// Thread safety: main thread only.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "cli/ctl_client.h"

namespace keel::cli {

// Runs the console; returns 0, or (reading a pipe) the status of the first command that failed.
int run_console(const CtlOptions& options);

// The console's attach: keel ctl attach's session with one hub client. On a terminal the
// operator's lines go to the client until "~.", Ctrl-D or Ctrl-C; from a pipe, the lines up to
// "~." (the console reads on after them). A kExit* status.
int run_console_attach(const CtlOptions& options, const std::string& target, bool terminal);

// keel ctl watch: prints the client's traffic until it closes or Ctrl-C. A kExit* status.
int run_watch(AdminClient& client, const std::string& target, std::FILE* out, std::FILE* err);

// One console line split into words (blanks separate words; no quoting: the rest of a send or
// broadcast line is its text as typed). rest[i]: the line from word i on.
struct ConsoleWords {
  std::vector<std::string> words;
  std::vector<std::string> rest;
};
ConsoleWords split_console_line(const std::string& line);

// The CtlCommand for a console line's words (list, send, broadcast, kick, stats, watch), or a
// usage problem in *problem.
bool parse_console_command(const ConsoleWords& w, CtlCommand& out, std::string* problem);

}  // namespace keel::cli
