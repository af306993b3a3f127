// RemoteRoster: a chat node's view of the other nodes' members, kept from their events.
#include "services/chat/remote_roster.h"

#include <gtest/gtest.h>

namespace keel::chat {
namespace {

using Clock = RemoteRoster::Clock;

TEST(RemoteRoster, FollowsJoinsLeavesAndRenames) {
  RemoteRoster r;
  r.joined("n1", "1", "Alice", "#lobby");
  r.joined("n2", "7", "bob", "#lobby");
  r.joined("n2", "8", "carol", "#dev");
  EXPECT_EQ(r.nicks_in("#lobby"), (std::vector<std::string>{"Alice", "bob"}));
  EXPECT_EQ(r.room_sizes(), (std::map<std::string, size_t>{{"#dev", 1}, {"#lobby", 2}}));
  EXPECT_EQ(r.node_of("alice"), "n1");  // nicks compare lower-case
  r.left("n2", "7");                    // bob leaves the room but keeps his nick
  EXPECT_EQ(r.nicks_in("#lobby"), std::vector<std::string>{"Alice"});
  EXPECT_EQ(r.node_of("bob"), "n2");
  r.renamed("n1", "1", "alicia", "#lobby");
  EXPECT_EQ(r.node_of("alice"), "");
  EXPECT_EQ(r.nicks_in("#lobby"), std::vector<std::string>{"alicia"});
  r.renamed("n2", "8", "", "");  // gone from its node
  EXPECT_EQ(r.node_of("carol"), "");
  EXPECT_EQ(r.member_count(), 2u);
}

TEST(RemoteRoster, ARosterReplacesWhatWasKnownOfItsNode) {
  RemoteRoster r;
  r.joined("n1", "1", "old", "#a");
  r.joined("n2", "2", "keep", "#a");
  r.replace("n1", {"5", "x", "#a", "6", "y", "", "7"});  // a trailing partial triple is ignored
  EXPECT_EQ(r.nicks_in("#a"), (std::vector<std::string>{"keep", "x"}));
  EXPECT_EQ(r.node_of("y"), "n1");
  EXPECT_EQ(r.node_of("old"), "");
}

TEST(RemoteRoster, SilentNodesExpireAndDroppedNodesGoWithTheirMembers) {
  RemoteRoster r;
  auto t0 = Clock::now();
  r.seen("n1", t0);
  r.joined("n1", "1", "a", "#r");
  r.seen("n2", t0 + std::chrono::seconds(3));
  r.joined("n2", "2", "b", "#r");
  auto gone = r.expire(t0 + std::chrono::seconds(1));
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].node, "n1");
  EXPECT_EQ(gone[0].member.nick, "a");
  EXPECT_EQ(gone[0].member.room, "#r");
  EXPECT_EQ(r.nicks_in("#r"), std::vector<std::string>{"b"});
  EXPECT_EQ(r.node_of("a"), "");
  EXPECT_EQ(r.node_of("b"), "n2");
  EXPECT_EQ(r.drop("n2").size(), 1u);
  EXPECT_EQ(r.node_of("b"), "");
  EXPECT_EQ(r.node_count(), 0u);
  EXPECT_TRUE(r.drop("n2").empty());
}

// A nick held on two nodes for a moment (a dead node's lease running out while the member comes
// back through another node): each holder's departure forgets only its own.
TEST(RemoteRoster, ANickOnTwoNodesIsFoundUntilBothLetItGo) {
  RemoteRoster r;
  r.joined("n1", "1", "Dana", "#r");
  r.joined("n2", "9", "dana", "");
  EXPECT_FALSE(r.node_of("dana").empty());
  EXPECT_EQ(r.drop("n1").size(), 1u);
  EXPECT_EQ(r.node_of("dana"), "n2");
  r.renamed("n2", "9", "dani", "");
  EXPECT_EQ(r.node_of("dana"), "");
  EXPECT_EQ(r.node_of("dani"), "n2");
  r.replace("n2", {"9", "Dani", "#r"});  // the same member again: one entry, not two
  r.renamed("n2", "9", "", "");
  EXPECT_EQ(r.node_of("dani"), "");
  EXPECT_EQ(r.member_count(), 0u);
}

}  // namespace
}  // namespace keel::chat
