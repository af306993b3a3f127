// The token of an admin request over TCP, found before the request is parsed: the bytes of an
// unauthenticated client are only scanned up to the top-level "token" string, never built into a
// JSON tree (the line itself is already capped by AdminOptions::max_request_bytes).
// Thread safety: a pure function.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace keel::admin {

namespace detail {

// Stops at the root object's "token" value; holds nothing but the depth and the token.
class TokenScanner final : public nlohmann::json::json_sax_t {
 public:
  std::optional<std::string> token;

  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool binary(binary_t&) override { return value(); }
  bool string(string_t& s) override {
    if (depth_ == 1 && at_token_) {
      token = std::move(s);
      return false;  // found: the rest is not looked at
    }
    return value();
  }
  bool start_object(std::size_t) override {
    if (depth_ == 0 && seen_root_) return false;
    seen_root_ = true;
    at_token_ = false;
    ++depth_;
    return true;
  }
  bool key(string_t& k) override {
    at_token_ = depth_ == 1 && k == "token";
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    if (depth_ == 0) return false;  // the root must be an object
    at_token_ = false;
    ++depth_;
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  bool value() {
    at_token_ = false;
    return depth_ > 0;  // a bare value is not a request
  }
  int depth_ = 0;
  bool seen_root_ = false;
  bool at_token_ = false;
};

}  // namespace detail

// The string value of the request's top-level "token" key when the line is (so far) a JSON
// object that carries one before any syntax error; nullopt otherwise. Bytes after the token are
// not examined: a request whose token checks out is parsed in full afterwards.
inline std::optional<std::string> request_token(std::string_view line) {
  detail::TokenScanner scanner;
  (void)nlohmann::json::sax_parse(line.data(), line.data() + line.size(), &scanner,
                                  nlohmann::json::input_format_t::json, true);
  return std::move(scanner.token);
}

}  // namespace keel::admin
