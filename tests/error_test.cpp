#include "vqvae2/core/error.h"

#include "test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace vqvae2 {
namespace {

TEST(Error, CheckThrowsTheFormattedMessageOnlyWhenTheConditionFails) {
  EXPECT_NO_THROW(VQVAE2_CHECK(1 + 1 == 2, "never {}", 1));
  test::expect_error([] { VQVAE2_CHECK(false, "batch size must be positive, got {}", -3); },
                     "batch size must be positive, got -3");
  EXPECT_THROW(fail("x {}", 1), Error);
}

TEST(Error, ShapesReadAsLists) {
  EXPECT_EQ(shape_of({2, 3, 32, 32}), "[2, 3, 32, 32]");
  EXPECT_EQ(shape_of({}), "[]");
}

TEST(Error, DescribeDropsLibTorchsBacktrace) {
  try {
    torch::zeros({2, 3}).matmul(torch::zeros({4, 5}));
    FAIL() << "LibTorch accepted a bad matrix product";
  } catch (const std::exception& e) {
    const auto text = describe(e);
    EXPECT_FALSE(text.empty());
    EXPECT_EQ(text.find("Exception raised from"), std::string::npos) << text;
    EXPECT_NE(std::string(e.what()).find("Exception raised from"), std::string::npos)
        << "c10::Error::what() no longer carries a backtrace; describe() may be simplified";
  }
  EXPECT_EQ(describe(Error("plain")), "plain");
}

}  // namespace
}  // namespace vqvae2
