// keel ctl's reply handling: collecting the reply line, and what a reply from the admin endpoint
// looks like to a person.
// Thread safety: render_reply is a pure function; a ReplyLine is used by one thread at a time.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace keel::cli {

// Collects a reply that arrives in pieces and finds its end ("\n"). Each byte is scanned once,
// whatever the number of pieces, so a large reply costs time linear in its size.
class ReplyLine {
 public:
  // Appends bytes received; true once the line is complete (bytes after the "\n" are dropped).
  bool append(std::string_view bytes);
  bool complete() const noexcept { return complete_; }
  // The line without its "\n" once complete(); what arrived so far before.
  const std::string& line() const noexcept { return line_; }
  size_t size() const noexcept { return line_.size(); }
  // Bytes searched for "\n" so far (for tests: never more than were appended).
  size_t bytes_scanned() const noexcept { return scanned_; }

 private:
  std::string line_;
  size_t scanned_ = 0;
  bool complete_ = false;
};

// Text for a successful reply to cmd ("list" and "stats": tables; the others: one line), each
// line ending in "\n". Fields a reply lacks show as "-".
std::string render_reply(const std::string& cmd, const nlohmann::ordered_json& reply);

}  // namespace keel::cli
