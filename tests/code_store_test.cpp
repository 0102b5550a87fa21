#include "vqvae2/data/code_store.h"

#include "test_util.h"
#include "vqvae2/core/error.h"

#include <gtest/gtest.h>

namespace vqvae2 {
namespace {

TEST(CodeStore, RoundTripKeepsEveryCodeAndTheHeader) {
  test::TempDir dir;
  const std::vector<CodeLevel> levels = {{4, 6, 512}, {2, 3, 65536}};
  const auto bottom = torch::randint(0, 512, {5, 4, 6}, torch::kLong);
  const auto top = torch::randint(0, 65536, {5, 2, 3}, torch::kLong);
  CodeStoreWriter writer(dir.file("c.vq2"), levels, {{"split", "train"}});
  writer.append({bottom.slice(0, 0, 2), top.slice(0, 0, 2)});
  writer.append({bottom.slice(0, 2, 5), top.slice(0, 2, 5)});
  writer.close();
  const auto store = read_code_store(dir.file("c.vq2"));
  EXPECT_EQ(store.size(), 5);
  EXPECT_EQ(store.meta["split"], "train");
  ASSERT_EQ(store.levels.size(), 2u);
  EXPECT_EQ(store.levels[1].codes, 65536);
  EXPECT_TRUE(torch::equal(store.codes[0], bottom));
  EXPECT_TRUE(torch::equal(store.codes[1], top));
  // 2 bytes a code plus a small header.
  const auto size = std::filesystem::file_size(dir.file("c.vq2"));
  EXPECT_LT(size, 5u * (24 + 6) * 2 + 200);
}

TEST(CodeStore, HasTheDocumentedLayout) {
  test::TempDir dir;
  CodeStoreWriter writer(dir.file("c.vq2"), {{1, 2, 10}});
  writer.append({torch::tensor({{{3, 9}}}, torch::kLong)});
  writer.close();
  const auto bytes = test::read_text(dir.file("c.vq2"));
  ASSERT_EQ(bytes.substr(0, 8), "VQ2CODES");
  uint32_t version;
  uint64_t header;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&header, bytes.data() + 12, 8);
  EXPECT_EQ(version, 1u);
  const auto json = nlohmann::json::parse(bytes.substr(20, header));
  EXPECT_EQ(json["levels"][0]["codes"], 10);
  uint64_t count;
  std::memcpy(&count, bytes.data() + 20 + header, 8);
  EXPECT_EQ(count, 1u);
  uint16_t codes[2];
  std::memcpy(codes, bytes.data() + 28 + header, 4);
  EXPECT_EQ(codes[0], 3);
  EXPECT_EQ(codes[1], 9);
  EXPECT_EQ(bytes.size(), 28 + header + 4 + 4);
}

TEST(CodeStore, RefusesTruncatedCorruptAndForeignFiles) {
  test::TempDir dir;
  CodeStoreWriter writer(dir.file("c.vq2"), {{2, 2, 16}});
  writer.append({torch::randint(0, 16, {3, 2, 2}, torch::kLong)});
  writer.close();
  const auto bytes = test::read_text(dir.file("c.vq2"));
  for (size_t length = 0; length < bytes.size(); length += 7) {
    test::write_bytes(dir.file("cut.vq2"), bytes.substr(0, length));
    EXPECT_THROW(read_code_store(dir.file("cut.vq2")), Error) << length;
  }
  auto flipped = bytes;
  flipped[flipped.size() - 6] ^= 1;
  test::write_bytes(dir.file("flip.vq2"), flipped);
  EXPECT_THROW(read_code_store(dir.file("flip.vq2")), Error);
  test::write_bytes(dir.file("foreign.vq2"), "VQV2CKPT and more bytes here");
  EXPECT_THROW(read_code_store(dir.file("foreign.vq2")), Error);
}

TEST(CodeStore, RejectsCodesOutsideTheCodebookAndWrongShapes) {
  test::TempDir dir;
  CodeStoreWriter writer(dir.file("c.vq2"), {{2, 2, 16}});
  EXPECT_THROW(writer.append({torch::full({1, 2, 2}, 16, torch::kLong)}), Error);
  EXPECT_THROW(writer.append({torch::zeros({1, 3, 2}, torch::kLong)}), Error);
  EXPECT_THROW(writer.append({torch::zeros({1, 2, 2}, torch::kLong), torch::zeros({1, 2, 2}, torch::kLong)}), Error);
}

TEST(CodeStore, AbandonedWriterLeavesNothingBehind) {
  test::TempDir dir;
  {
    CodeStoreWriter writer(dir.file("c.vq2"), {{2, 2, 16}});
    writer.append({torch::zeros({1, 2, 2}, torch::kLong)});
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(CodeStore, LevelMismatchIsAClearError) {
  CodeStore store;
  store.levels = {{8, 8, 512}};
  try {
    check_code_levels(store, {{16, 16, 512}, {8, 8, 512}}, "x.vq2");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("8x8 K=512"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vqvae2
