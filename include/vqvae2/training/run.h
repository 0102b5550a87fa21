// A run folder and the process-level plumbing every long command shares: where files go, clean
// stops on SIGINT/SIGTERM, and a guard against non-finite losses.
//
//   <run>/config.json       the full configuration (also inside every checkpoint)
//   <run>/metrics.jsonl     one JSON object per line: per-step training figures, per-epoch evaluations
//   <run>/<name>.ckpt       the latest checkpoint, replaced atomically
//   <run>/grids/*.png       reconstructions, samples
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace vqvae2 {

class RunFolder {
 public:
  // Names the folder <root>; nothing is made on disk until create().
  explicit RunFolder(std::string root);
  // Creates <root> and <root>/grids, and removes temporary files that a killed process left there
  // (<file>.tmp.<pid>.<n> of a process that no longer runs). start_training calls it once the run's
  // configuration and data have been checked, so a run refused before then leaves no folder behind.
  void create() const;
  const std::string& root() const { return root_; }
  std::string file(const std::string& name) const;  // <root>/<name>
  void write_json(const std::string& name, const nlohmann::json& value) const;

 private:
  std::string root_;
};

// SIGINT/SIGTERM set a flag instead of killing the process; long loops poll it, finish their
// current step, write a checkpoint and return. A second signal kills the process as usual.
void install_stop_handlers();
bool stop_requested();
void clear_stop_request();
void request_stop();  // the same as receiving the signal (tests use it)

// Throws vqvae2::Error when `value` is NaN or infinite, naming what, the step and where to resume.
void check_finite(double value, const std::string& what, int64_t step, const std::string& last_checkpoint);

}  // namespace vqvae2
