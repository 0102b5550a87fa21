// A progress bar with rate and ETA for long work. On a terminal it redraws one line; otherwise
// (logs, CI) it prints a plain line every 10% of the work or 30 seconds, whichever comes first.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace vqvae2 {

class ProgressBar {
 public:
  // `start` > 0 when resuming: the rate and ETA count only the work done in this process.
  ProgressBar(std::string label, int64_t total, int64_t start = 0, bool enabled = true);
  ~ProgressBar();

  void update(int64_t done, const std::string& status = "");
  void finish(const std::string& status = "");
  // Prints a line above the bar (a warning, an evaluation result) without garbling it; printed
  // also when the bar itself is disabled.
  void message(const std::string& text);

  static std::string format_duration(double seconds);

 private:
  void draw(bool final);

  std::string label_;
  int64_t total_, start_, done_;
  bool enabled_, terminal_, finished_ = false;
  std::string status_;
  std::chrono::steady_clock::time_point began_, last_draw_;
  int64_t last_logged_done_ = -1;
};

}  // namespace vqvae2
