#include "vqvae2/core/metrics.h"

#include "test_util.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/progress.h"
#include "vqvae2/training/run.h"

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

TEST(Metrics, NonFiniteLossesStopWithTheStepAndTheCheckpoint) {
  EXPECT_NO_THROW(check_finite(1.5, "loss", 3, ""));
  try {
    check_finite(std::nan(""), "the VQ-VAE loss", 42, "runs/x/vqvae.ckpt");
    FAIL();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("NaN at step 42"), std::string::npos) << message;
    EXPECT_NE(message.find("runs/x/vqvae.ckpt"), std::string::npos) << message;
  }
  EXPECT_THROW(check_finite(INFINITY, "loss", 1, ""), Error);
}

TEST(Metrics, DurationsReadNaturally) {
  EXPECT_EQ(ProgressBar::format_duration(5), "5s");
  EXPECT_EQ(ProgressBar::format_duration(125), "2m05s");
  EXPECT_EQ(ProgressBar::format_duration(3 * 3600 + 60 * 7), "3h07m");
  EXPECT_EQ(ProgressBar::format_duration(-1), "--");
}

}  // namespace
}  // namespace vqvae2
