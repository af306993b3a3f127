// keel ls, get and put: the clients of keel files (src/services/files). One file per command:
// files_commands.cc (flags, ls), files_get.cc, files_put.cc.
// Thread safety: main thread only.
#pragma once

#include <string>

#include "cli/files_client.h"

namespace keel::cli {

struct GetFlags {
  FilesClientOptions client;
  std::string remote;
  std::string local;  // empty: the remote name's last component, here
  bool resume = false;
  bool force = false;  // replace an existing local file
  bool json = false;
  bool quiet = false;  // no progress line
};

struct PutFlags {
  FilesClientOptions client;
  std::string local;
  std::string remote;  // empty: the local file's name, in the served root
  bool resume = false;
  bool force = false;  // replace an existing remote file
  bool json = false;
  bool quiet = false;
};

// Each returns the exit code; failures print one line to stderr.
int run_get(const GetFlags& f);
int run_put(const PutFlags& f);

// The last component of a /-separated path ("" if it ends in '/').
std::string last_component(const std::string& path);
// Whether to draw a progress line: stderr is a terminal and neither --json nor --quiet.
bool show_progress(bool json, bool quiet);

}  // namespace keel::cli
