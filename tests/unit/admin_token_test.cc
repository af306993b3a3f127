// The admin token is found before a TCP request is parsed: only the root object's "token"
// string counts, and scanning stops there.
#include "admin/admin_token.h"

#include <gtest/gtest.h>

#include <string>

namespace keel::admin {
namespace {

TEST(AdminToken, FoundAtTheTopLevelOnly) {
  EXPECT_EQ(request_token(R"({"cmd":"list","token":"s3cret"})"), "s3cret");
  EXPECT_EQ(request_token(R"({"token":"a\"b","cmd":[1,{"x":null}]})"), "a\"b");
  EXPECT_EQ(request_token(R"({"cmd":{"token":"inner"},"token":"outer"})"), "outer");
  EXPECT_EQ(request_token(R"({"token":"first","token":"second"})"), "first");
  EXPECT_EQ(request_token(R"({"cmd":{"token":"inner"}})"), std::nullopt);
  EXPECT_EQ(request_token(R"([{"token":"in an array"}])"), std::nullopt);
  EXPECT_EQ(request_token(R"("token")"), std::nullopt);
  EXPECT_EQ(request_token(R"({"token":1})"), std::nullopt);
  EXPECT_EQ(request_token(R"({"token":["s3cret"]})"), std::nullopt);
  EXPECT_EQ(request_token("not json"), std::nullopt);
  EXPECT_EQ(request_token(""), std::nullopt);
}

TEST(AdminToken, StopsAtTheTokenAndNeverReadsPastASyntaxError) {
  // What follows the token is not examined (it is parsed only once the token checks out).
  EXPECT_EQ(request_token(R"({"token":"s3cret", this is not json)"), "s3cret");
  // A syntax error before the token ends the scan.
  EXPECT_EQ(request_token(R"({"cmd":oops,"token":"s3cret"})"), std::nullopt);
  // Deep nesting before the token costs a scan, not a tree, and still finds it.
  std::string deep =
      R"({"cmd":)" + std::string(10000, '[') + std::string(10000, ']') + R"(,"token":"s3cret"})";
  EXPECT_EQ(request_token(deep), "s3cret");
}

}  // namespace
}  // namespace keel::admin
