#include "vqvae2/training/run.h"

#include "vqvae2/core/files.h"
#include "vqvae2/core/error.h"

#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cmath>
#include <csignal>
#include <filesystem>

namespace vqvae2 {

RunFolder::RunFolder(std::string root) : root_(std::move(root)) {}

void RunFolder::create() const {
  std::error_code error;
  std::filesystem::create_directories(std::filesystem::path(root_) / "grids", error);
  VQVAE2_CHECK(!error, "cannot create run folder '{}': {}", root_, error.message());
  remove_stale_temporaries(root_);
  remove_stale_temporaries((std::filesystem::path(root_) / "grids").string());
}

std::string RunFolder::file(const std::string& name) const { return (std::filesystem::path(root_) / name).string(); }

void RunFolder::write_json(const std::string& name, const nlohmann::json& value) const {
  write_file_atomically(file(name), value.dump(2) + "\n");
}

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int signal) {
  if (g_stop.exchange(true)) {
    std::signal(signal, SIG_DFL);  // second signal: default action
    std::raise(signal);
  }
}

}  // namespace

void install_stop_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

bool stop_requested() { return g_stop.load(); }
void clear_stop_request() { g_stop.store(false); }
void request_stop() { g_stop.store(true); }

void check_finite(double value, const std::string& what, int64_t step, const std::string& last_checkpoint) {
  if (std::isfinite(value)) return;
  fail("{} became {} at step {}; stopping so no damaged model is saved. The last good checkpoint is {}. "
       "A lower learning rate usually helps; then resume.",
       what, std::isnan(value) ? "NaN" : "infinite", step,
       last_checkpoint.empty() ? std::string("(none yet)") : "'" + last_checkpoint + "'");
}

}  // namespace vqvae2
