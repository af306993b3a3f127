// keel ctl's output: what a reply from the admin endpoint looks like to a person.
// Thread safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace keel::cli {

// Text for a successful reply to cmd ("list" and "stats": tables; the others: one line), each
// line ending in "\n". Fields a reply lacks show as "-".
std::string render_reply(const std::string& cmd, const nlohmann::ordered_json& reply);

}  // namespace keel::cli
