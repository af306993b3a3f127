// keel ctl's operator console (cli/ctl_console.h): how lines are read. On a terminal: libedit
// (its readline-compatible API) in callback mode, so one poll(2) waits for keys and Ctrl-C alike;
// history in $XDG_STATE_HOME/keel/ctl_history or ~/.keel_history. From a pipe: plain lines.
#include "cli/ctl_console.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

// libedit's readline.h needs FILE and declares no namespace.
#include <editline/readline.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "cli/commands.h"
#include "cli/ctl_console_session.h"
#include "cli/ctl_interrupt.h"

namespace keel::cli {
namespace {

constexpr int kHistoryLines = 1000;
constexpr const char* kPrompt = "keel> ";

// The console being driven by libedit's callbacks (they take no context argument).
ConsoleSession* g_session = nullptr;
bool g_quit = false;
std::string g_history_path;

std::string history_path() {
  if (const char* state = std::getenv("XDG_STATE_HOME"); state && *state == '/') {
    std::string dir = std::string(state) + "/keel";
    ::mkdir(dir.c_str(), 0700);
    return dir + "/ctl_history";
  }
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.keel_history";
  return {};
}

char* completion_entry(const char* text, int state) {
  static std::vector<std::string> matches;
  static size_t next = 0;
  if (state == 0) {
    matches.clear();
    next = 0;
    std::string before(rl_line_buffer, static_cast<size_t>(std::max(rl_point, 0)));
    ConsoleWords w = split_console_line(before);
    // The word being completed is not part of "before" unless the cursor follows a blank.
    std::vector<std::string> words = w.words;
    if (!words.empty() && !before.empty() && before.back() != ' ' && before.back() != '\t')
      words.pop_back();
    std::string prefix = text;
    for (const std::string& c : g_session->candidates(words))
      if (c.starts_with(prefix)) matches.push_back(c);
  }
  if (next >= matches.size()) return nullptr;
  return ::strdup(matches[next++].c_str());
}

char** complete(const char* text, int, int) {
  rl_attempted_completion_over = 1;  // never fall back to file names
  return rl_completion_matches(text, completion_entry);
}

void on_line(char* line) {
  if (!line) {  // Ctrl-D on an empty line
    std::fputs("\n", stdout);
    g_quit = true;
    return;
  }
  std::string text(line);
  std::free(line);
  // Kept without the blank completion leaves at the end.
  std::string entry = text.substr(0, text.find_last_not_of(" \t") + 1);
  if (text.find_first_not_of(" \t") != std::string::npos) {
    add_history(entry.c_str());
    if (!g_history_path.empty()) write_history(g_history_path.c_str());
  }
  // The command runs with the line editor out of the way (watch prints as it goes).
  rl_callback_handler_remove();
  g_session->execute(text, &g_quit);
  clear_interrupts();
  if (!g_quit) rl_callback_handler_install(kPrompt, on_line);
}

int run_terminal(ConsoleSession& session) {
  g_session = &session;
  g_quit = false;
  g_history_path = history_path();
  stifle_history(kHistoryLines);
  if (!g_history_path.empty()) read_history(g_history_path.c_str());
  static char word_breaks[] = " \t";
  rl_completer_word_break_characters = word_breaks;
  rl_attempted_completion_function = complete;
  rl_catch_signals = 0;
  int cancel = interrupt_fd();
  std::printf("keel ctl console on %s; help lists the commands, Ctrl-D leaves\n",
              admin_endpoint_text(session.options()).c_str());
  std::fflush(stdout);
  rl_callback_handler_install(kPrompt, on_line);
  while (!g_quit) {
    pollfd p[2] = {{STDIN_FILENO, POLLIN, 0}, {cancel, POLLIN, 0}};
    int rc = ::poll(p, cancel >= 0 ? 2 : 1, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) break;
    if (cancel >= 0 && p[1].revents) {  // Ctrl-C: drop the line being typed, new prompt
      clear_interrupts();
      rl_replace_line("", 0);
      rl_callback_handler_remove();
      std::fputs("^C\n", stdout);
      std::fflush(stdout);
      rl_callback_handler_install(kPrompt, on_line);
      continue;
    }
    if (p[0].revents & (POLLIN | POLLHUP)) rl_callback_read_char();
    if (p[0].revents & (POLLERR | POLLNVAL)) break;
  }
  rl_callback_handler_remove();
  if (!g_history_path.empty()) {
    write_history(g_history_path.c_str());
    history_truncate_file(g_history_path.c_str(), kHistoryLines);
  }
  g_session = nullptr;
  return kExitOk;
}

int run_pipe(ConsoleSession& session) {
  int first_failure = kExitOk;
  std::string line;
  bool quit = false;
  while (!quit && std::getline(std::cin, line)) {
    int code = session.execute(line, &quit);
    if (code != kExitOk && first_failure == kExitOk) first_failure = code;
  }
  return first_failure;
}

}  // namespace

int run_console(const CtlOptions& options) {
  const bool terminal = ::isatty(STDIN_FILENO);
  ConsoleSession session(options, terminal);
  return terminal ? run_terminal(session) : run_pipe(session);
}

}  // namespace keel::cli
