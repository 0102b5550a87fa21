#include "test_util.h"

#include "vqvae2/core/device.h"
#include "vqvae2/data/data.h"
#include "vqvae2/data/image.h"
#include "vqvae2/models/prior.h"
#include "vqvae2/stages/presets.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace vqvae2::test {

namespace fs = std::filesystem;

TempDir::TempDir() {
  std::random_device device;
  path_ = (fs::temp_directory_path() / ("vqvae2-test-" + std::to_string(device()) + std::to_string(device()))).string();
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

std::string TempDir::file(const std::string& name) const { return (fs::path(path_) / name).string(); }

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

CommandResult run_vqvae2(const std::string& arguments, const std::string& environment) {
  CommandResult result;
  const std::string command =
      (environment.empty() ? "" : "env " + environment + " ") + "'" + VQVAE2_BINARY + "' " + arguments + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

int spawn_vqvae2(const std::string& arguments, const std::string& log) {
  std::vector<std::string> words = {VQVAE2_BINARY};
  std::istringstream in(arguments);
  for (std::string word; in >> word;) words.push_back(word);
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  const int error = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return error == 0 ? pid : -1;
}

int wait_for(int pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

RunSettings quiet() {
  RunSettings settings;
  settings.quiet = true;
  return settings;
}

TrainVQVAEConfig tiny_config() {
  TrainVQVAEConfig config;
  config.model.image_size = 16;
  config.model.channels = 1;
  config.data.limit = 512;
  config.model.hidden = 16;
  config.model.res_blocks = 1;
  config.model.res_channels = 8;
  config.model.strides = {2, 2};
  config.model.codes = {32};
  config.model.code_dims = {8};
  config.model.quantizer.dead_code_threshold = 1.0;
  config.train.batch_size = 16;
  config.train.epochs = 1;
  config.train.learning_rate = 1e-3;
  config.train.log_every = 1;
  config.train.grid_images = 4;
  return config;
}

void untrained_vqvae(const std::string& run_dir, bool codebooks_from_data) {
  const auto config = tiny_config();
  seed_everything(3);
  HierarchicalVQVAE model(config.model);
  if (codebooks_from_data) {
    const auto dataset = ImageDataset::open(config.data, config.model.format());
    std::vector<torch::Tensor> images;
    for (int64_t i = 0; i < 32; ++i) images.push_back(dataset->get(i));
    model->train();
    model->forward(to_model_range(torch::stack(images)));
  }
  std::filesystem::create_directories(run_dir);
  write_model_checkpoint(run_dir + "/vqvae.ckpt", VQVAEKind::name, config, 0, *model);
}

std::vector<std::string> untrained_priors(const std::string& dir, bool condition_dropout) {
  const auto model = tiny_config().model;
  std::vector<std::string> folders;
  for (int64_t level = 0; level < model.levels(); ++level) {
    const auto side = model.latent_size(level);
    TrainPriorConfig config;
    config.model = level + 1 == model.levels()
                       ? top_prior_options(level, side, side, model.codes_at(level), PriorSize::kSmall)
                       : conditional_prior_options(level, side, side, model.codes_at(level), model.codes_at(level + 1),
                                                   model.strides[level + 1], PriorSize::kSmall);
    config.model.stack.channels = config.model.stack.res_channels = config.model.condition.channels = 16;
    config.model.stack.heads = 2;
    if (!condition_dropout) config.model.condition_dropout = 0;  // as priors trained before it existed
    seed_everything(4 + level);
    Prior prior(config.model);
    folders.push_back(dir + "/prior-level" + std::to_string(level));
    std::filesystem::create_directories(folders.back());
    write_model_checkpoint(folders.back() + "/prior.ckpt", PriorKind::name, config, 0, *prior);
  }
  return folders;
}

void untrained_vae(const std::string& run_dir, int64_t image_size) {
  const auto vq = tiny_config();
  TrainVAEConfig config;
  config.data = vq.data;
  config.train = vq.train;
  config.model.image_size = image_size;
  config.model.channels = vq.model.channels;
  config.model.hidden = 16;
  config.model.res_blocks = 1;
  config.model.res_channels = 8;
  config.model.stride = 4;
  config.model.latent_channels = 8;
  seed_everything(5);
  GaussianVAE model(config.model);
  std::filesystem::create_directories(run_dir);
  write_model_checkpoint(run_dir + "/vae.ckpt", VAEKind::name, config, 0, *model);
}

std::string digit_classifier_path() {
  return (std::filesystem::temp_directory_path() / "vqvae2-test-digit-classifier.ckpt").string();
}

}  // namespace vqvae2::test
