#include "vqvae2/core/metrics.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <cmath>

namespace vqvae2 {
namespace {

TEST(Metrics, PsnrAndBitsHaveTheirDefinitions) {
  // MSE 0.04 in [-1, 1] units is 0.01 in [0, 1] units: PSNR 20 dB.
  EXPECT_NEAR(psnr_from_mse(0.04), 20.0, 1e-9);
  EXPECT_NEAR(bits_from_nats(std::log(512.0)), 9.0, 1e-9);
}

TEST(Metrics, LogWritesOneJsonObjectPerLine) {
  test::TempDir dir;
  {
    MetricsLog log(dir.file("m.jsonl"));
    log.write({{"step", 1}, {"loss", 0.5}});
    log.write({{"step", 2}, {"loss", 0.25}});
  }
  EXPECT_EQ(test::read_text(dir.file("m.jsonl")), "{\"loss\":0.5,\"step\":1}\n{\"loss\":0.25,\"step\":2}\n");
}

TEST(Metrics, TruncateKeepsCompleteLinesUpToTheStep) {
  test::TempDir dir;
  test::write_bytes(dir.file("m.jsonl"),
                    "{\"step\":1}\n{\"step\":5,\"event\":\"eval\"}\n{\"step\":6}\n{\"step\":3}\n{\"step\":7,\"lo");
  MetricsLog::truncate_after(dir.file("m.jsonl"), 5);
  EXPECT_EQ(test::read_text(dir.file("m.jsonl")), "{\"step\":1}\n{\"step\":5,\"event\":\"eval\"}\n{\"step\":3}\n");
}

}  // namespace
}  // namespace vqvae2
