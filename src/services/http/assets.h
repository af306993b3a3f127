// The dashboard's files (src/services/http/assets/), compiled into keel as byte arrays by
// cmake/embed_assets.cmake, so the binary serves the page with nothing beside it.
// Thread safety: immutable data; any function may be called from any thread.
#pragma once

#include <span>
#include <string_view>

namespace keel::http {

struct Asset {
  std::string_view path;          // the URL path: "/" for index.html, else "/" + file name
  std::string_view content_type;  // "text/html; charset=utf-8", ...
  std::string_view body;
};

// Every embedded file, sorted by file name.
std::span<const Asset> assets();

// The asset served at `path` (no query string), or nullptr.
const Asset* find_asset(std::string_view path);

}  // namespace keel::http
