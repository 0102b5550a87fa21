#include "vqvae2/core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

namespace vqvae2 {

ProgressBar::ProgressBar(std::string label, int64_t total, int64_t start, std::ostream* out, bool bar)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      start_(start),
      done_(start),
      out_(out),
      enabled_(bar && out != nullptr),
      // Redraw in place only on a terminal: std::cerr on a tty.
      terminal_(out == &std::cerr && ::isatty(STDERR_FILENO) == 1),
      began_(std::chrono::steady_clock::now()),
      last_draw_(began_ - std::chrono::hours(1)) {}

ProgressBar::~ProgressBar() {
  if (!finished_) finish();
}

std::string ProgressBar::format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "--";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

void ProgressBar::update(int64_t done, const std::string& status) {
  done_ = std::min(done, total_);
  status_ = status;
  const auto now = std::chrono::steady_clock::now();
  if (terminal_) {
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  } else {
    const bool tenth = last_logged_done_ < 0 || (done_ - last_logged_done_) * 10 >= total_;
    if (!tenth && now - last_draw_ < std::chrono::seconds(30)) return;
  }
  last_draw_ = now;
  draw(false);
}

void ProgressBar::draw(bool final) {
  if (!enabled_) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - began_).count();
  const auto progressed = done_ - start_;
  const double rate = elapsed > 0 ? progressed / elapsed : 0;
  const double eta = rate > 0 ? (total_ - done_) / rate : -1;
  const int width = 24;
  const int filled = static_cast<int>(width * done_ / total_);
  const auto bar = std::string(filled, '#') + std::string(width - filled, '.');
  const auto timing = final ? fmt::format("in {}", format_duration(elapsed))
                            : fmt::format("{:.2f} it/s  ETA {}", rate, format_duration(eta));
  const auto line = fmt::format("{} [{}] {:3d}% {}/{}  {}  {}", label_, bar, static_cast<int>(100 * done_ / total_),
                                done_, total_, timing, status_);
  if (terminal_) {
    *out_ << "\r\033[2K" << line << (final ? "\n" : "") << std::flush;
  } else {
    *out_ << line << "\n" << std::flush;
    last_logged_done_ = done_;
  }
}

void ProgressBar::finish(const std::string& status) {
  if (finished_) return;
  finished_ = true;
  if (!status.empty()) status_ = status;
  draw(true);
}

void ProgressBar::message(const std::string& text) {
  if (!out_) return;
  if (enabled_ && terminal_) *out_ << "\r\033[2K";
  *out_ << text << "\n";
  if (enabled_ && terminal_ && !finished_) draw(false);
  *out_ << std::flush;
}

}  // namespace vqvae2
