// How an admin request names a client ("id" of kick, "to" of send): every value that names no
// client is an error that names the field and says what is wrong (it used to say "missing" for
// -0.0 and print an empty id for "").
#include "admin/admin_fields.h"

#include <gtest/gtest.h>

namespace keel::admin {
namespace {

using Json = nlohmann::ordered_json;

std::string id_problem(const std::string& json) {
  std::string problem;
  EXPECT_FALSE(client_id_field(Json::parse(json), "id", &problem)) << json;
  return problem;
}

std::string to_problem(const std::string& json) {
  std::string problem;
  EXPECT_FALSE(client_ref_field(Json::parse(json), &problem)) << json;
  return problem;
}

TEST(AdminClientIdField, NumbersAndDigitStringsAreIds) {
  std::string problem;
  EXPECT_EQ(client_id_field(Json::parse("17"), "id", &problem), 17u);
  EXPECT_EQ(client_id_field(Json::parse("0"), "id", &problem), 0u);
  EXPECT_EQ(client_id_field(Json::parse("18446744073709551615"), "id", &problem), ~uint64_t{0});
  EXPECT_EQ(client_id_field(Json::parse("\"4294967552\""), "id", &problem), 4294967552u);
  EXPECT_EQ(problem, "");
}

TEST(AdminClientIdField, EveryOtherValueNamesTheFieldAndWhatIsWrong) {
  const std::string number =
      "\"id\" must be a client id (a whole number from 0 up, as keel ctl "
      "list shows), got ";
  EXPECT_EQ(id_problem("-0.0"), number + "-0.0");
  EXPECT_EQ(id_problem("-1"), number + "-1");
  EXPECT_EQ(id_problem("1.5"), number + "1.5");
  EXPECT_EQ(id_problem("17.0"), number + "17.0");
  EXPECT_EQ(id_problem("1e30"), number + "1e+30");
  EXPECT_EQ(id_problem("true"), number + "true");
  EXPECT_EQ(id_problem("null"), number + "null");
  EXPECT_EQ(id_problem("[17]"), number + "[17]");
  EXPECT_EQ(id_problem("{\"id\":17}"), number + "{\"id\":17}");
  EXPECT_EQ(id_problem("\"\""),
            "\"id\" is empty: give a client id (digits, as keel ctl list shows)");
  EXPECT_EQ(id_problem("\"abc\""),
            "\"id\" must be a client id (digits, as keel ctl list shows), got \"abc\"");
  EXPECT_EQ(id_problem("\"-1\""),
            "\"id\" must be a client id (digits, as keel ctl list shows), got \"-1\"");
  EXPECT_EQ(id_problem("\"18446744073709551616\""),
            "\"id\" is too large for a client id (at most 18446744073709551615), got "
            "\"18446744073709551616\"");
  // A long value is cut in the message.
  std::string long_value = id_problem("\"" + std::string(200, 'x') + "\"");
  EXPECT_LT(long_value.size(), 150u);
  EXPECT_TRUE(long_value.ends_with("...")) << long_value;
}

TEST(AdminClientRefField, IdsAndAddresses) {
  std::string problem;
  EXPECT_EQ(client_ref_field(Json::parse("17"), &problem), ClientRef(uint64_t{17}));
  EXPECT_EQ(client_ref_field(Json::parse("\"17\""), &problem), ClientRef(uint64_t{17}));
  EXPECT_EQ(client_ref_field(Json::parse("\"127.0.0.1:5555\""), &problem),
            ClientRef(std::string("127.0.0.1:5555")));
  EXPECT_EQ(problem, "");
}

TEST(AdminClientRefField, EveryOtherValueNamesTheFieldAndWhatIsWrong) {
  EXPECT_EQ(to_problem("\"\""),
            "\"to\" is empty: give a client id or an address (as keel ctl list shows)");
  EXPECT_EQ(to_problem("-0.0"),
            "\"to\" must be a client id (a whole number from 0 up, as keel ctl list shows), got "
            "-0.0");
  EXPECT_EQ(
      to_problem("-3"),
      "\"to\" must be a client id (a whole number from 0 up, as keel ctl list shows), got -3");
  EXPECT_EQ(to_problem("\"99999999999999999999\""),
            "\"to\" is too large for a client id (at most 18446744073709551615), got "
            "\"99999999999999999999\"");
  EXPECT_EQ(to_problem("false"),
            "\"to\" must be a client id or an address (as keel ctl list shows), got false");
  EXPECT_EQ(to_problem("[\"17\"]"),
            "\"to\" must be a client id or an address (as keel ctl list shows), got [\"17\"]");
}

}  // namespace
}  // namespace keel::admin
