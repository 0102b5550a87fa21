// Helpers shared by the tests: scratch folders, files, and running the vqvae2 binary.
#pragma once

#include "vqvae2/stages/trained.h"
#include "vqvae2/training/trainer.h"

#include "vqvae2/core/error.h"

#include <gtest/gtest.h>

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
// Runs the vqvae2 binary under test with `arguments` (a shell-quoted string), with `environment`
// ("NAME=value ...") added to its environment.
CommandResult run_vqvae2(const std::string& arguments, const std::string& environment = "");

// Starts the vqvae2 binary with `arguments` (split on spaces) in the background, its output going
// to `log`; returns its process id.
int spawn_vqvae2(const std::string& arguments, const std::string& log);
// Waits for a spawned process; returns its exit code, or 128 + the signal that ended it.
int wait_for(int pid);

// Run settings for tests: CPU, no progress bar.
RunSettings quiet();

// `call` must fail with an exception whose message (without any LibTorch backtrace) contains `text`:
// the messages users act on are part of the interface, so tests pin them.
template <typename Call>
void expect_error(Call&& call, const std::string& text) {
  try {
    call();
    ADD_FAILURE() << "no error; expected one saying '" << text << "'";
  } catch (const std::exception& e) {
    EXPECT_NE(describe(e).find(text), std::string::npos) << "the message was: " << describe(e);
  }
}

// A VQ-VAE configuration small enough for a test to train in a second or two: 16×16 grey
// embedded digits, two levels (8×8, 4×4), narrow widths.
TrainVQVAEConfig tiny_config();

// Untrained models as checkpoints, for testing what only uses trained ones (encode, decode, sample):
// a VQ-VAE of tiny_config() in `run_dir`, and one small prior per level of it, each in
// <dir>/prior-level<l>; returns the prior folders, bottom first. With `codebooks_from_data` the
// VQ-VAE's codebooks are initialised from one batch of its images (one training-mode pass), so that
// different images get different codes.
void untrained_vqvae(const std::string& run_dir, bool codebooks_from_data = false);
// The lower priors have the small preset's condition dropout unless `condition_dropout` is false
// (as priors trained before it existed).
std::vector<std::string> untrained_priors(const std::string& dir, bool condition_dropout = true);
// An untrained Gaussian VAE on the images of tiny_config() (16×16 grey, same data and split; or
// `image_size`), a latent map of 8 channels at a quarter of the side, in `run_dir`.
void untrained_vae(const std::string& run_dir, int64_t image_size = 16);

// The digit classifier's cache file for tests, shared by every test binary and run (under the system
// temp folder), so the classifier is trained once (seconds), not once per test.
std::string digit_classifier_path();

}  // namespace vqvae2::test
