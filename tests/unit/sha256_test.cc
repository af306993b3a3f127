// Sha256 against the FIPS 180-2 / NIST test vectors, fed whole and in uneven pieces, forked by
// copying, and the digest's hex form.
#include "services/files/sha256.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <utility>

namespace keel::files {
namespace {

constexpr const char* kEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr const char* kTwoBlocks =
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
constexpr const char* kMillionA =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(to_hex(Sha256::of("")), kEmpty);
  EXPECT_EQ(to_hex(Sha256().finish()), kEmpty);
  EXPECT_EQ(to_hex(Sha256::of("abc")), kAbc);
  EXPECT_EQ(to_hex(Sha256::of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            kTwoBlocks);
  Sha256 pieces;
  pieces.update("a", 1);
  pieces.update("");
  pieces.update(nullptr, 0);
  pieces.update("bc");
  EXPECT_EQ(to_hex(pieces.finish()), kAbc);
}

TEST(Sha256, AMillionAsInUnevenChunks) {
  const std::string as(1000000, 'a');
  Sha256 hash;
  size_t done = 0, chunk = 1;
  while (done < as.size()) {
    size_t n = std::min(chunk, as.size() - done);
    hash.update(as.data() + done, n);
    done += n;
    chunk = chunk * 7 % 9973 + 1;  // 1, 8, 57, 400, ...: across and inside 64-byte blocks
  }
  EXPECT_EQ(to_hex(hash.finish()), kMillionA);
  EXPECT_EQ(to_hex(Sha256::of(as)), kMillionA);
}

TEST(Sha256, ACopyCarriesOnIndependently) {
  Sha256 running;
  running.update("ab");
  Sha256 fork = running;
  running.update("c");
  EXPECT_EQ(fork.finish(), Sha256::of("ab"));
  EXPECT_EQ(to_hex(running.finish()), kAbc);

  Sha256 assigned;
  assigned.update("unrelated bytes");
  Sha256 source;
  source.update("a");
  assigned = source;
  source.update("zzz");
  assigned.update("bc");
  EXPECT_EQ(to_hex(assigned.finish()), kAbc);
  EXPECT_EQ(source.finish(), Sha256::of("azzz"));
}

TEST(Sha256, AMoveTakesTheStateAndTheSourceCanBeAssignedAgain) {
  Sha256 a;
  a.update("ab");
  Sha256 b = std::move(a);
  a = b;  // copy-assigning into a moved-from object
  b.update("c");
  EXPECT_EQ(to_hex(b.finish()), kAbc);
  EXPECT_EQ(a.finish(), Sha256::of("ab"));
  Sha256 c;
  c.update("abc");
  Sha256 d;
  d = std::move(c);
  EXPECT_EQ(to_hex(d.finish()), kAbc);
  Sha256 e = std::move(d);
  d = Sha256();  // move-assigning into a moved-from object
  EXPECT_EQ(to_hex(d.finish()), kEmpty);
}

TEST(Sha256, HexRoundTripsAndRefusesAnythingButSixtyFourDigits) {
  Digest digest{};
  ASSERT_TRUE(from_hex(kAbc, digest));
  EXPECT_EQ(digest, Sha256::of("abc"));
  std::string upper = kAbc;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  Digest from_upper{};
  ASSERT_TRUE(from_hex(upper, from_upper));
  EXPECT_EQ(from_upper, digest);

  const Digest before = digest;
  std::string s = kEmpty;
  EXPECT_FALSE(from_hex(s.substr(0, 63), digest));
  EXPECT_FALSE(from_hex(s + "0", digest));
  EXPECT_FALSE(from_hex("", digest));
  EXPECT_FALSE(from_hex("g" + s.substr(1), digest));
  EXPECT_FALSE(from_hex(s.substr(0, 62) + " 5", digest));
  EXPECT_EQ(digest, before);  // untouched by a refusal
}

}  // namespace
}  // namespace keel::files
