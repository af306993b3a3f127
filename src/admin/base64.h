// Base64 (RFC 4648, standard alphabet, with padding) for the admin protocol's byte fields:
// stream events carry a client's exact bytes as "data", and `say` may carry the operator's as
// "base64". Decoding takes untrusted text: anything that is not canonical base64 is refused.
// Thread safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace keel::admin {

std::string base64_encode(std::string_view bytes);
// nullopt for a length that is not a multiple of 4, a character outside the alphabet, padding
// anywhere but at the end, or non-zero bits under the padding.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace keel::admin
