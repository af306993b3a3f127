// How keel ctl watch shows a client's traffic to a person: one line per line of traffic with
// the time and a direction marker ("<" from the client, ">" to the client), control characters
// and invalid bytes escaped so the client can never drive the operator's terminal.
// Thread safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace keel::cli {

// Bytes as one terminal-safe line: printable ASCII and valid UTF-8 as they are (but not C1
// controls), "\\" as "\\\\", \t \r \n as such, other controls and invalid bytes as \xNN.
std::string escape_bytes(std::string_view bytes);

// The display lines for one watch event from the admin endpoint (docs/protocols.md, "watch"),
// each ending in "\n"; empty for an event it does not know (or malformed, as bad base64). A data
// chunk ("data": base64) is split at its newlines ("\r\n" too); a tail without one shows as a line
// of its own.
std::string render_watch_event(const nlohmann::ordered_json& event);

// "20:31:02.123" from "2026-11-28T20:31:02.123Z" (the time of day, UTC); the text as it is if
// it has no "T".
std::string time_of_day(std::string_view timestamp);

}  // namespace keel::cli
