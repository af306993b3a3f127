#include "cli/serve_files.h"

#include <cctype>
#include <limits>

#include "keel/error.h"

namespace keel::cli {

void add_files_flags(CLI::App& cmd, FilesFlags& f) {
  // Checked when serving rather than by CLI11, so that --print-config works without it.
  cmd.add_option("--root", f.root, "The directory served (required): no path leads outside it")
      ->check(CLI::ExistingDirectory);
  cmd.add_flag("--writable", f.writable,
               "Accept uploads (keel put); without it the server is read-only");
  cmd.add_option("--max-file-bytes", f.max_file_bytes,
                 "Largest upload accepted: bytes, or with K, M, G or T (powers of 1024)")
      ->capture_default_str();
  cmd.add_option("--max-transfers", f.max_transfers,
                 "Downloads, uploads and hashes at once, all clients together; over it a "
                 "client is told 'busy'. 0 = no cap")
      ->capture_default_str();
  cmd.add_option("--hash-threads", f.hash_threads,
                 "Threads that compute SHA-256 for verification, off the event loops")
      ->check(CLI::Range(size_t{1}, size_t{64}))
      ->capture_default_str();
}

uint64_t parse_byte_size(const std::string& text, const char* flag) {
  if (text == "unlimited") return std::numeric_limits<uint64_t>::max();
  size_t i = 0;
  uint64_t n = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (n > (std::numeric_limits<uint64_t>::max() - digit) / 10)
      throw Error(std::string(flag) + " " + text + ": too large");
    n = n * 10 + digit;
  }
  if (i == 0) throw Error(std::string(flag) + " " + text + ": expected a byte count such as 10G");
  std::string unit = text.substr(i);
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b') && unit.size() > 1)
    unit.pop_back();
  int shift = 0;
  if (unit.empty() || unit == "B" || unit == "b")
    shift = 0;
  else if (unit.size() == 1 && std::string("kKmMgGtT").find(unit[0]) != std::string::npos)
    shift = 10 * (1 + static_cast<int>(std::string("KMGT").find(
                          static_cast<char>(std::toupper(static_cast<unsigned char>(unit[0]))))));
  else
    throw Error(std::string(flag) + " " + text + ": unknown unit '" + unit +
                "' (use K, M, G or T)");
  if (shift && n > (std::numeric_limits<uint64_t>::max() >> shift))
    throw Error(std::string(flag) + " " + text + ": too large");
  return n << shift;
}

files::FilesOptions files_options(const FilesFlags& f) {
  files::FilesOptions o;
  o.root = f.root;
  o.writable = f.writable;
  o.max_file_bytes = parse_byte_size(f.max_file_bytes, "--max-file-bytes");
  o.max_transfers = f.max_transfers;
  o.hash_threads = f.hash_threads;
  return o;
}

}  // namespace keel::cli
