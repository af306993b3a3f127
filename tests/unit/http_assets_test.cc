// The dashboard's embedded files (src/services/http/assets/, cmake/embed_assets.cmake): the
// page is at "/", every file the page loads is embedded, each has its content type, the bytes
// are the files' bytes, and nothing is loaded from another site (no CDN: the page works offline).
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "services/http/assets.h"

namespace keel::http {
namespace {

std::string source_file(const std::string& name) {
  std::ifstream in(std::string(KEEL_SOURCE_DIR) + "/src/services/http/assets/" + name,
                   std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(HttpAssets, PageIsServedAtRootAsHtml) {
  const Asset* page = find_asset("/");
  ASSERT_NE(page, nullptr);
  EXPECT_EQ(page->content_type, "text/html; charset=utf-8");
  EXPECT_EQ(page->body, source_file("index.html"));
  EXPECT_EQ(find_asset("/index.html"), nullptr);
  EXPECT_EQ(find_asset("/nope.js"), nullptr);
  EXPECT_EQ(find_asset(""), nullptr);
}

TEST(HttpAssets, EveryFileThePageLoadsIsEmbedded) {
  std::string page(find_asset("/")->body);
  std::regex ref(R"re((?:src|href)="([^"]*)")re");
  int refs = 0;
  for (auto it = std::sregex_iterator(page.begin(), page.end(), ref); it != std::sregex_iterator();
       ++it) {
    std::string path = (*it)[1];
    ASSERT_FALSE(path.empty());
    ASSERT_EQ(path[0], '/') << "the page loads " << path << " from elsewhere";
    EXPECT_NE(find_asset(path), nullptr) << path << " is not embedded";
    ++refs;
  }
  EXPECT_GE(refs, 5);  // the stylesheet, the icon and the scripts
}

TEST(HttpAssets, EachHasItsTypeAndTheFilesBytes) {
  ASSERT_GE(assets().size(), 6u);
  for (const Asset& asset : assets()) {
    std::string path(asset.path);
    std::string name = path == "/" ? "index.html" : path.substr(1);
    EXPECT_EQ(asset.body, source_file(name)) << path;
    std::string ext = name.substr(name.rfind('.') + 1);
    std::string type(asset.content_type);
    const char* expected = ext == "js"     ? "text/javascript; charset=utf-8"
                           : ext == "css"  ? "text/css; charset=utf-8"
                           : ext == "svg"  ? "image/svg+xml"
                           : ext == "html" ? "text/html; charset=utf-8"
                                           : "";
    EXPECT_EQ(type, expected) << path;
  }
}

TEST(HttpAssets, NothingComesFromAnotherSite) {
  std::regex remote(R"re((src|href|url|import|fetch|EventSource)\s*[=(]\s*["']?(https?:)?//)re");
  for (const Asset& asset : assets()) {
    std::string body(asset.body);
    EXPECT_FALSE(std::regex_search(body, remote)) << asset.path << " loads from another site";
  }
}

}  // namespace
}  // namespace keel::http
