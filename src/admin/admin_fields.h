// How an admin request names a client: "id" (kick) is a client id; "to" (send) is a client id
// or a peer address. A value that is neither is answered with an error that names the field and
// what is wrong with it (docs/protocols.md, "Admin protocol").
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>

#include "admin/admin_protocol.h"

namespace keel::admin {

// A client named by its id (as `list` shows it) or by its peer address.
using ClientRef = std::variant<uint64_t, std::string>;

namespace detail {

// The value as the request had it, cut to 64 bytes, for an error message.
inline std::string shown(const nlohmann::ordered_json& v) {
  std::string text = v.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  return text.size() > 64 ? text.substr(0, 64) + "..." : text;
}

}  // namespace detail

// A client id: a JSON integer from 0 up, or a string of digits. Anything else (a negative or
// fractional number, -0.0, an empty or non-digit string, a number past 2^64-1, true, null, an
// array, an object) sets *problem to a message naming `field` and returns nullopt.
inline std::optional<uint64_t> client_id_field(const nlohmann::ordered_json& v, const char* field,
                                               std::string* problem) {
  const std::string name = std::string("\"") + field + "\"";
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0)
    return static_cast<uint64_t>(v.get<int64_t>());
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (auto id = parse_client_id(s)) return id;
    if (s.empty())
      *problem = name + " is empty: give a client id (digits, as keel ctl list shows)";
    else if (s.find_first_not_of("0123456789") == std::string::npos)
      *problem = name + " is too large for a client id (at most 18446744073709551615), got " +
                 detail::shown(v);
    else
      *problem =
          name + " must be a client id (digits, as keel ctl list shows), got " + detail::shown(v);
    return std::nullopt;
  }
  *problem = name +
             " must be a client id (a whole number from 0 up, as keel ctl list shows), got " +
             detail::shown(v);
  return std::nullopt;
}

// The "to" of a send: a client id (a number or a string of digits) or a peer address (any other
// non-empty string). Sets *problem and returns nullopt for anything else.
inline std::optional<ClientRef> client_ref_field(const nlohmann::ordered_json& v,
                                                 std::string* problem) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (s.empty()) {
      *problem = "\"to\" is empty: give a client id or an address (as keel ctl list shows)";
      return std::nullopt;
    }
    if (s.find_first_not_of("0123456789") != std::string::npos) return ClientRef(s);
  }
  if (v.is_number() || v.is_string()) {
    if (auto id = client_id_field(v, "to", problem)) return ClientRef(*id);
    return std::nullopt;
  }
  *problem =
      "\"to\" must be a client id or an address (as keel ctl list shows), got " + detail::shown(v);
  return std::nullopt;
}

}  // namespace keel::admin
