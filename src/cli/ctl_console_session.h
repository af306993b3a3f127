// What the operator console does with each line, apart from how lines are read (terminal or
// pipe, ctl_console.cc): parsing, the requests, and the names completion offers.
// Thread safety: main thread only.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/ctl_client.h"
#include "cli/ctl_console.h"

namespace keel::cli {

class ConsoleSession {
 public:
  // terminal: lines come from a terminal (else a pipe).
  ConsoleSession(const CtlOptions& options, bool terminal)
      : client_(options), terminal_(terminal) {}

  // Runs one line; a kExit* status (kExitOk for blank lines and comments). Sets *quit for quit.
  int execute(const std::string& line, bool* quit);

  // What may follow the words before the one being completed (line up to the cursor, split):
  // command names first, then client ids, addresses and nicks from a list at most
  // kNamesMaxAge old, rooms and services after --room / --service.
  std::vector<std::string> candidates(const std::vector<std::string>& before);

  static constexpr std::chrono::seconds kNamesMaxAge{2};
  const CtlOptions& options() const noexcept { return client_.options(); }

 private:
  // A nick (from a fresh list) becomes its client's id; ids and addresses stay as they are.
  // False (with the reason printed) when a nick names no client or several.
  bool resolve_target(std::string& target);
  void refresh_names(bool force);

  AdminClient client_;
  const bool terminal_;
  std::chrono::steady_clock::time_point names_at_{};
  bool names_valid_ = false;
  std::vector<std::string> ids_, addresses_, nicks_, rooms_, services_;
  std::vector<std::pair<std::string, std::string>> nick_ids_;  // (nick, id)
};

}  // namespace keel::cli
