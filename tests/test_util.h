// Helpers shared by the tests: scratch folders, files, and running the vqvae2 binary.
#pragma once

#include "vqvae2/stages/train_vqvae.h"

#include <string>
#include <vector>

namespace vqvae2::test {

// A fresh folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const;

 private:
  std::string path_;
};

void write_bytes(const std::string& path, const std::string& bytes);
std::string read_text(const std::string& path);

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};
// Runs the vqvae2 binary under test with `arguments` (a shell-quoted string).
CommandResult run_vqvae2(const std::string& arguments);

// Starts the vqvae2 binary with `arguments` (split on spaces) in the background, its output going
// to `log`; returns its process id.
int spawn_vqvae2(const std::string& arguments, const std::string& log);
// Waits for a spawned process; returns its exit code, or 128 + the signal that ended it.
int wait_for(int pid);

// Run settings for tests: CPU, no progress bar.
RunSettings quiet();

// A VQ-VAE configuration small enough for a test to train in a second or two: 16×16 grey
// embedded digits, two levels (8×8, 4×4), narrow widths.
TrainVQVAEConfig tiny_config();

}  // namespace vqvae2::test
