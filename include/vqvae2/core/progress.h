// A progress bar with rate and ETA for long work, written to a stream the caller chooses (the CLI
// passes std::cerr; the library itself never prints). On a terminal it redraws one line; otherwise
// (logs, CI) it prints a plain line every 10% of the work or 30 seconds, whichever comes first.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <ostream>
#include <string>

namespace vqvae2 {

class ProgressBar {
 public:
  // `start` > 0 when resuming: the rate and ETA count only the work done in this process. `out`
  // receives the bar (when `bar` is true) and messages; nullptr = silent.
  ProgressBar(std::string label, int64_t total, int64_t start, std::ostream* out, bool bar = true);
  ~ProgressBar();

  void update(int64_t done, const std::string& status = "");
  void finish(const std::string& status = "");
  // Prints a line above the bar (a warning, an evaluation result) without garbling it; printed
  // also when the bar itself is off.
  void message(const std::string& text);

  static std::string format_duration(double seconds);

 private:
  void draw(bool final);

  std::string label_;
  int64_t total_, start_, done_;
  std::ostream* out_;
  bool enabled_, terminal_, finished_ = false;
  std::string status_;
  std::chrono::steady_clock::time_point began_, last_draw_;
  int64_t last_logged_done_ = -1;
};

}  // namespace vqvae2
