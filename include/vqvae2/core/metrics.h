// Training metrics: the JSON-lines log every run writes, and the figures it records.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>

namespace vqvae2 {

// One JSON object per line, each written with a single write() and flushed, so the log stays
// valid JSON lines even if the process is killed (at worst the last line is missing).
class MetricsLog {
 public:
  MetricsLog() = default;
  explicit MetricsLog(const std::string& path);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

  // Rewrites the log keeping only complete lines whose "step" is at most `step` (on resume, the
  // lines a killed run wrote after its last checkpoint would otherwise be logged twice).
  static void truncate_after(const std::string& path, int64_t step);

 private:
  std::string path_;
  int fd_ = -1;
};

// Peak signal-to-noise ratio in dB for images in [-1, 1] with mean squared error `mse`
// (the same as PSNR in [0, 1] units: 10 log10(1 / (mse / 4))).
double psnr_from_mse(double mse);

// Bits per code from a mean cross-entropy in nats.
double bits_from_nats(double nats);

}  // namespace vqvae2
