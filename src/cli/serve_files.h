// keel files' own flags and the service they describe (the server flags are serve.cc's).
// Thread safety: call from the main thread while parsing the command line.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "services/files/files_service.h"

namespace keel::cli {

struct FilesFlags {
  std::vector<std::string> listen;
  std::string root;
  bool writable = false;
  std::string max_file_bytes = "unlimited";
  size_t max_transfers = 0;
  size_t hash_threads = 1;
};

// What a files connection may leave unread (replies; file bytes are not held in memory).
inline constexpr size_t kFilesHighWaterBytes = 1 << 20;
// A stalled upload holds a transfer slot and disk: without --idle-timeout, keel files closes
// a connection (and removes its part file) after this many seconds without a byte.
inline constexpr double kFilesIdleTimeoutS = 60;

// --root (required), --writable, --max-file-bytes, --max-transfers, --hash-threads.
void add_files_flags(CLI::App& cmd, FilesFlags& f);
// Throws Error for a bad --max-file-bytes ("10G", "512M", "1000", "unlimited").
files::FilesOptions files_options(const FilesFlags& f);
// "10G" (powers of 1024; K, M, G, T; a B suffix allowed) or a plain byte count; "unlimited"
// is the largest value. Throws Error naming the flag.
uint64_t parse_byte_size(const std::string& text, const char* flag);

}  // namespace keel::cli
