#include "keel/net/connection_id.h"

#include <gtest/gtest.h>

#include <unordered_set>

namespace keel {
namespace {

TEST(ConnectionId, DefaultIsInvalid) {
  ConnectionId id;
  EXPECT_FALSE(id.valid());
  EXPECT_TRUE(id == ConnectionId());
}

TEST(ConnectionId, PacksAndUnpacksFields) {
  ConnectionId id(3, 12345, 678);
  EXPECT_TRUE(id.valid());
  EXPECT_EQ(id.loop(), 3u);
  EXPECT_EQ(id.slot(), 12345u);
  EXPECT_EQ(id.generation(), 678u);
}

TEST(ConnectionId, FieldsDoNotOverlapAtTheirLimits) {
  const uint32_t max_loop = ConnectionId::kMaxLoops - 1;
  const uint32_t max_slot = ConnectionId::kMaxSlots - 1;
  struct Case {
    uint32_t loop, slot, generation;
  } cases[] = {{0, 0, 0},
               {max_loop, 0, 0},
               {0, max_slot, 0},
               {0, 0, 0xffffffffu},
               {max_loop, max_slot, 0},
               {1, 2, 0xfffffffeu},
               {0x5a, 0xa5a5a5, 0x12345678}};
  for (const Case& c : cases) {
    ConnectionId id(c.loop, c.slot, c.generation);
    EXPECT_TRUE(id.valid());
    EXPECT_EQ(id.loop(), c.loop);
    EXPECT_EQ(id.slot(), c.slot);
    EXPECT_EQ(id.generation(), c.generation);
  }
}

TEST(ConnectionId, ValueRoundTrip) {
  ConnectionId id(7, 99, 4);
  ConnectionId copy = ConnectionId::from_value(id.value());
  EXPECT_TRUE(copy == id);
  EXPECT_EQ(copy.loop(), 7u);
  EXPECT_EQ(copy.slot(), 99u);
  EXPECT_EQ(copy.generation(), 4u);
}

TEST(ConnectionId, EveryFieldTakesPartInEquality) {
  ConnectionId id(1, 2, 3);
  EXPECT_TRUE(id == ConnectionId(1, 2, 3));
  EXPECT_FALSE(id == ConnectionId(0, 2, 3));
  EXPECT_FALSE(id == ConnectionId(1, 3, 3));
  EXPECT_FALSE(id == ConnectionId(1, 2, 4)) << "a reused slot must not match an old id";
}

TEST(ConnectionId, HashesDistinctIds) {
  std::unordered_set<ConnectionId> ids;
  for (uint32_t loop = 0; loop < 4; ++loop)
    for (uint32_t slot = 0; slot < 16; ++slot)
      for (uint32_t gen = 0; gen < 4; ++gen) ids.insert(ConnectionId(loop, slot, gen));
  EXPECT_EQ(ids.size(), 4u * 16u * 4u);
  EXPECT_EQ(ids.count(ConnectionId(2, 5, 1)), 1u);
}

TEST(ConnectionId, IsConstexpr) {
  constexpr ConnectionId id(2, 3, 4);
  static_assert(id.loop() == 2 && id.slot() == 3 && id.generation() == 4);
  static_assert(!ConnectionId().valid());
  SUCCEED();
}

}  // namespace
}  // namespace keel
