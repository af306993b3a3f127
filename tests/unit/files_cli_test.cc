// keel files' command-line pieces: --max-file-bytes parsing, and the progress line's numbers.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "cli/serve_files.h"
#include "cli/transfer_progress.h"
#include "keel/error.h"

namespace keel::cli {
namespace {

TEST(FilesCliTest, ByteSizesTakeUnitsInPowersOf1024) {
  EXPECT_EQ(parse_byte_size("0", "--x"), 0u);
  EXPECT_EQ(parse_byte_size("1000", "--x"), 1000u);
  EXPECT_EQ(parse_byte_size("512K", "--x"), 512u * 1024);
  EXPECT_EQ(parse_byte_size("10M", "--x"), 10u * 1024 * 1024);
  EXPECT_EQ(parse_byte_size("10G", "--x"), uint64_t{10} << 30);
  EXPECT_EQ(parse_byte_size("2TB", "--x"), uint64_t{2} << 40);
  EXPECT_EQ(parse_byte_size("3g", "--x"), uint64_t{3} << 30);
  EXPECT_EQ(parse_byte_size("unlimited", "--x"), std::numeric_limits<uint64_t>::max());
}

TEST(FilesCliTest, BadByteSizesNameTheFlag) {
  for (const char* bad : {"", "G", "-1", "10X", "1.5G", "99999999999999999999", "17179869184T"}) {
    try {
      parse_byte_size(bad, "--max-file-bytes");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--max-file-bytes"), std::string::npos) << e.what();
    }
  }
}

TEST(FilesCliTest, ProgressTextIsReadable) {
  EXPECT_EQ(TransferProgress::bytes_text(17), "17 B");
  EXPECT_EQ(TransferProgress::bytes_text(1536), "1.5 KiB");
  EXPECT_EQ(TransferProgress::bytes_text(3.0 * 1024 * 1024 * 1024), "3.0 GiB");
  EXPECT_EQ(TransferProgress::duration_text(7), "0:07");
  EXPECT_EQ(TransferProgress::duration_text(125), "2:05");
  EXPECT_EQ(TransferProgress::duration_text(3723), "1:02:03");
}

}  // namespace
}  // namespace keel::cli
