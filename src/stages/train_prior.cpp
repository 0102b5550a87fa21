#include "vqvae2/stages/train_prior.h"

#include "vqvae2/core/checkpoint.h"
#include "vqvae2/data/data.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/training/run.h"
#include "vqvae2/training/train_loop.h"

#include <filesystem>
#include <iostream>

namespace vqvae2 {

std::string prior_checkpoint_path(const std::string& run_dir) { return RunFolder(run_dir).file("prior.ckpt"); }

LevelCodes level_codes(const CodeStore& store, int64_t level) {
  const auto levels = static_cast<int64_t>(store.levels.size());
  VQVAE2_CHECK(level >= 0 && level < levels, "level {} does not exist: the code store has levels 0..{}", level,
               levels - 1);
  LevelCodes out;
  out.codes = store.codes[level];
  if (level + 1 < levels) out.condition = store.codes[level + 1];
  return out;
}

PriorOptions prior_options_for(const CodeStore& store, int64_t level, PriorSize size) {
  const auto levels = static_cast<int64_t>(store.levels.size());
  VQVAE2_CHECK(level >= 0 && level < levels, "level {} does not exist: the code store has levels 0..{}", level,
               levels - 1);
  const auto& l = store.levels[level];
  if (level == levels - 1) return top_prior_options(level, l.height, l.width, l.codes, size);
  const auto& above = store.levels[level + 1];
  VQVAE2_CHECK(l.height % above.height == 0 && l.height / above.height == l.width / above.width,
               "level {} ({}x{}) is not an integer upsampling of level {} ({}x{})", level, l.height, l.width, level + 1,
               above.height, above.width);
  return conditional_prior_options(level, l.height, l.width, l.codes, above.codes, l.height / above.height, size);
}

double evaluate_prior(Prior& prior, const LevelCodes& data, int64_t batch_size, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  const bool was_training = prior->is_training();
  prior->eval();
  const auto n = data.codes.size(0);
  VQVAE2_CHECK(n > 0, "nothing to evaluate: no codes");
  double total = 0;
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    const auto end = std::min(n, begin + batch_size);
    const auto codes = data.codes.slice(0, begin, end).to(device);
    const auto condition = data.condition.defined() ? data.condition.slice(0, begin, end).to(device) : torch::Tensor();
    total += prior->loss(codes, condition).item<double>() * static_cast<double>(end - begin);
  }
  prior->train(was_training);
  return total / static_cast<double>(n);
}

namespace {

class PriorTask : public TrainingTask {
 public:
  PriorTask(const TrainPriorConfig& config, Prior prior, torch::Device device, LevelCodes train, LevelCodes validation)
      : config_(config),
        prior_(std::move(prior)),
        device_(device),
        optimizer_(prior_->parameters(), torch::optim::AdamOptions(config.train.learning_rate)),
        train_(std::move(train)),
        validation_(std::move(validation)) {
    all_.resize(train_.codes.size(0));
    std::iota(all_.begin(), all_.end(), 0);
  }

  torch::optim::Adam& optimizer() { return optimizer_; }

  int64_t batches_per_epoch() const override {
    return static_cast<int64_t>(all_.size()) / config_.train.batch_size;
  }

  void start_epoch(int64_t epoch, int64_t first_batch) override {
    order_ = torch::tensor(shuffled_order(all_, config_.train.seed, epoch), torch::kLong);
    next_batch_ = first_batch;
  }

  bool forward(nlohmann::json& figures, int64_t& images) override {
    if (next_batch_ >= batches_per_epoch()) return false;
    const auto b = config_.train.batch_size;
    const auto picks = order_.slice(0, next_batch_ * b, (next_batch_ + 1) * b);
    ++next_batch_;
    prior_->train();
    const auto codes = train_.codes.index_select(0, picks).to(device_);
    const auto condition =
        train_.condition.defined() ? train_.condition.index_select(0, picks).to(device_) : torch::Tensor();
    loss_ = prior_->loss(codes, condition);
    const auto nats = loss_.item<double>();
    figures = {{"loss", nats}, {"bits_per_code", bits_from_nats(nats)}};
    images = b;
    return true;
  }

  void step() override {
    optimizer_.zero_grad();
    loss_.backward();
    optimizer_.step();
    loss_ = torch::Tensor();
  }

  void discard() override { loss_ = torch::Tensor(); }

  nlohmann::json evaluate() override {
    const auto nats = evaluate_prior(prior_, validation_, config_.train.batch_size, device_);
    const auto& o = prior_->options();
    const double bits = bits_from_nats(nats);
    nlohmann::json e = {{"nll_nats", nats}, {"bits_per_code", bits}, {"codes", validation_.codes.size(0)}};
    if (config_.image_dims > 0) e["bits_per_dim"] = bits * static_cast<double>(o.height * o.width) / config_.image_dims;
    return e;
  }

  std::string summarize(const nlohmann::json& e) const override {
    return fmt::format("held-out NLL {:.3f} bits per code (uniform: {:.3f}){}", e.at("bits_per_code").get<double>(),
                       std::log2(static_cast<double>(prior_->options().stack.codes)),
                       e.contains("bits_per_dim") ? fmt::format(", {:.4f} bits per image dimension",
                                                                e.at("bits_per_dim").get<double>())
                                                  : "");
  }

  void save(const std::string& path, int64_t step) override {
    NamedTensors tensors;
    save_module(*prior_, tensors, "model");
    save_adam(optimizer_, tensors, "optimizer");
    write_checkpoint(path, {{"kind", "prior"}, {"config", config_}, {"state", {{"step", step}}}}, tensors);
  }

 private:
  TrainPriorConfig config_;
  Prior prior_;
  torch::Device device_;
  torch::optim::Adam optimizer_;
  LevelCodes train_, validation_;
  std::vector<int64_t> all_;
  torch::Tensor order_;
  int64_t next_batch_ = 0;
  torch::Tensor loss_;
};

CodeStore read_store(const std::string& folder, const std::string& name) {
  const auto path = (std::filesystem::path(folder) / name).string();
  VQVAE2_CHECK(std::filesystem::exists(path), "'{}' not found; --codes takes the folder `vqvae2 extract-codes` wrote",
               path);
  return read_code_store(path);
}

}  // namespace

TrainPriorResult train_prior(const TrainPriorConfig& config, const std::string& run_dir, bool resume,
                             const RunSettings& settings) {
  config.model.validate();
  config.train.validate();
  const auto device = parse_device(settings.device);
  RunFolder run(run_dir);
  const auto checkpoint_path = run.file("prior.ckpt");

  const auto train_store = read_store(config.codes, "train.vq2");
  const auto validation_store = read_store(config.codes, "val.vq2");
  const auto& o = config.model;
  for (const auto* store : {&train_store, &validation_store}) {
    const auto levels = static_cast<int64_t>(store->levels.size());
    VQVAE2_CHECK(o.level < levels && store->levels[o.level].height == o.height && store->levels[o.level].width == o.width &&
                     store->levels[o.level].codes == o.stack.codes && o.conditional == (o.level + 1 < levels) &&
                     (!o.conditional || store->levels[o.level + 1].codes == o.condition.codes),
                 "the codes in '{}' do not match this prior (level {}, {}x{}, K={}); train the prior on the codes it "
                 "was configured for",
                 config.codes, o.level, o.height, o.width, o.stack.codes);
  }
  auto train = level_codes(train_store, o.level);
  auto validation = level_codes(validation_store, o.level);
  if (validation.codes.size(0) == 0) {
    std::cerr << "warning: no held-out codes: evaluating on the training codes\n";
    validation = train;
  }

  seed_everything(config.train.seed);
  Prior prior(config.model);
  prior->to(device);
  std::optional<CheckpointContents> contents;
  if (resume) {
    contents = read_checkpoint(checkpoint_path, "prior");
    const auto& stored = contents->meta.at("config");
    check_same_config(stored.at("model"), nlohmann::json(config.model), checkpoint_path);
  } else {
    VQVAE2_CHECK(!std::filesystem::exists(checkpoint_path),
                 "'{}' already holds a trained prior; pass --resume to continue it or choose another --out", run_dir);
  }
  PriorTask task(config, prior, device, train, validation);
  int64_t step = 0;
  if (contents) {
    load_module(*prior, contents->tensors, "model", checkpoint_path);
    load_adam(task.optimizer(), contents->tensors, "optimizer", checkpoint_path);
    step = contents->meta.at("state").at("step").get<int64_t>();
  }
  run.write_json("config.json", {{"kind", "prior"}, {"config", config}});
  if (!settings.quiet) {
    int64_t parameters = 0;
    for (const auto& p : prior->parameters()) parameters += p.numel();
    std::cerr << fmt::format("vqvae2 train-prior: level {} ({}x{} codes, K={}, {}), {:.2f} M parameters; {} train / {} "
                             "held-out maps; {} batches per epoch on {}{}\n",
                             o.level, o.height, o.width, o.stack.codes,
                             o.conditional ? "conditioned on the level above" : "PixelSNAIL top prior",
                             parameters / 1e6, train.codes.size(0), validation.codes.size(0), task.batches_per_epoch(),
                             device.str(), resume ? fmt::format(", resuming at step {}", step) : "");
  }
  const auto loop = run_training_loop(task, config.train, step,
                                      {fmt::format("train-prior L{}", o.level), checkpoint_path,
                                       run.file("metrics.jsonl"), settings.quiet});
  TrainPriorResult result;
  result.steps = loop.steps;
  result.interrupted = loop.interrupted;
  if (!loop.initial.is_null()) result.initial_bits_per_code = loop.initial.at("bits_per_code");
  if (!loop.final.is_null()) {
    result.final_bits_per_code = loop.final.at("bits_per_code");
    result.final_bits_per_dim = loop.final.value("bits_per_dim", 0.0);
  }
  result.checkpoint = checkpoint_path;
  return result;
}

LoadedPrior load_prior(const std::string& path, const torch::Device& device) {
  const auto contents = read_checkpoint(path, "prior");
  LoadedPrior loaded;
  std::tie(loaded.config, loaded.step) = stored_config<TrainPriorConfig>(contents, path);
  loaded.model = Prior(loaded.config.model);
  load_module(*loaded.model, contents.tensors, "model", path);
  loaded.model->to(device);
  loaded.model->eval();
  return loaded;
}

}  // namespace vqvae2
