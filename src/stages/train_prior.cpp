#include "vqvae2/stages/train_prior.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/data/data.h"
#include "vqvae2/stages/presets.h"
#include "vqvae2/training/distributed.h"

#include <cmath>
#include <filesystem>
#include <numeric>

namespace vqvae2 {

PriorCodes read_prior_codes(const std::string& folder) {
  VQVAE2_CHECK(!folder.empty(), "no codes folder given: the folder `vqvae2 extract-codes` wrote");
  PriorCodes codes;
  codes.folder = folder;
  for (const auto& [name, store] : {std::pair{"train.vq2", &codes.train}, std::pair{"val.vq2", &codes.validation}}) {
    const auto path = (std::filesystem::path(folder) / name).string();
    VQVAE2_CHECK(std::filesystem::exists(path),
                 "'{}' not found; the codes folder is the one `vqvae2 extract-codes` wrote", path);
    *store = read_code_store(path);
  }
  return codes;
}

int64_t parse_level(const std::string& level, int64_t levels) {
  if (level == "top") return levels - 1;
  if (level == "bottom") return 0;
  try {
    size_t used = 0;
    const auto value = std::stoll(level, &used);
    if (used == level.size() && value >= 0 && value < levels) return value;
  } catch (const std::exception&) {
  }
  fail("the level must be top, bottom or a level number in 0..{}, got '{}'", levels - 1, level);
}

TrainPriorConfig prior_config_for(const PriorCodes& codes, int64_t level, PriorSize size) {
  const auto& store = codes.train;
  VQVAE2_CHECK(store.meta.value("modality", std::string()) != "audio",
               "'{}' holds the codes of an audio VQ-VAE; their priors are WaveNets (wavenet_config_for)", codes.folder);
  const auto levels = static_cast<int64_t>(store.levels.size());
  VQVAE2_CHECK(level >= 0 && level < levels, "level {} does not exist: the code store has levels 0..{}", level,
               levels - 1);
  TrainPriorConfig config;
  const auto& l = store.levels[level];
  if (level == levels - 1) {
    config.model = top_prior_options(level, l.height, l.width, l.codes, size);
  } else {
    const auto& above = store.levels[level + 1];
    VQVAE2_CHECK(l.height % above.height == 0 && l.height / above.height == l.width / above.width,
                 "level {} ({}x{}) is not an integer upsampling of level {} ({}x{})", level, l.height, l.width,
                 level + 1, above.height, above.width);
    config.model = conditional_prior_options(level, l.height, l.width, l.codes, above.codes, l.height / above.height,
                                             size);
  }
  config.codes = codes.folder;
  config.train = prior_schedule(size, /*conditional=*/level != levels - 1);
  const auto side = store.meta.value("image_size", int64_t{0});
  config.image_dims = side * side * store.meta.value("channels", int64_t{0});
  return config;
}

namespace {

class PriorTask : public ModelTask {
 public:
  PriorTask(const TrainPriorConfig& config, Prior prior, torch::Device device, LevelCodes train, LevelCodes validation,
            const RunSettings& settings)
      : ModelTask(PriorKind::name, config, prior.ptr(), config.train.learning_rate),
        config_(config),
        prior_(std::move(prior)),
        device_(device),
        train_(std::move(train)),
        validation_(std::move(validation)),
        group_(settings.group),
        share_(settings.share_of(config.train.batch_size)) {
    all_.resize(train_.codes.size(0));
    std::iota(all_.begin(), all_.end(), 0);
    set_precision(config.train.precision, device);
  }

  int64_t batches_per_epoch() const override {
    return static_cast<int64_t>(all_.size()) / config_.train.batch_size;
  }

  void start_epoch(int64_t epoch, int64_t first_batch) override {
    order_ = torch::tensor(shuffled_order(all_, config_.train.seed, epoch), torch::kLong);
    next_batch_ = first_batch;
  }

  bool forward(nlohmann::json& figures, int64_t& images) override {
    if (next_batch_ >= batches_per_epoch()) return false;
    // This process's share of the global batch: rows [r·B/R, (r+1)·B/R) of it.
    const auto first = next_batch_ * config_.train.batch_size + (group_ ? group_->rank() : 0) * share_;
    const auto picks = order_.slice(0, first, first + share_);
    ++next_batch_;
    prior_->train();
    const auto codes = train_.codes.index_select(0, picks).to(device_);
    const auto condition =
        train_.condition.defined() ? train_.condition.index_select(0, picks).to(device_) : torch::Tensor();
    {
      const auto autocast = this->autocast();
      loss_ = prior_->loss(codes, condition);
    }
    const auto nats = loss_.item<double>();
    figures = {{"loss", nats}, {"bits_per_code", bits_from_nats(nats)}};
    images = share_;
    return true;
  }

  nlohmann::json evaluate() override {
    const auto nats = evaluate_prior(prior_, validation_, config_.train.batch_size, device_, group_.get());
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

 private:
  TrainPriorConfig config_;
  Prior prior_;
  torch::Device device_;
  LevelCodes train_, validation_;
  std::shared_ptr<DistributedGroup> group_;
  int64_t share_;  // code maps per step on this process
  std::vector<int64_t> all_;
  torch::Tensor order_;
  int64_t next_batch_ = 0;
};

}  // namespace

TrainPriorResult train_prior(const TrainPriorConfig& config, const PriorCodes& codes, const TrainingRun& run,
                             const RunSettings& settings) {
  config.validate();
  const auto device = parse_device(settings.device);
  const auto& o = config.model;
  for (const auto* store : {&codes.train, &codes.validation}) check_codes_fit(o, *store, codes.folder);
  auto train = level_codes(codes.train, o.level);
  auto validation = level_codes(codes.validation, o.level);
  if (validation.codes.size(0) == 0) {
    if (settings.log) *settings.log << "warning: no held-out codes: evaluating on the training codes\n";
    validation = train;
  }

  seed_everything(config.train.seed);
  Prior prior(config.model);
  prior->to(device);
  PriorTask task(config, prior, device, train, validation, settings);
  const auto step = start_training(task, run, config);
  if (settings.log) {
    int64_t parameters = 0;
    for (const auto& p : prior->parameters()) parameters += p.numel();
    *settings.log << fmt::format(
        "vqvae2 train-prior: level {} ({}x{} codes, K={}, {}), {:.2f} M parameters; {} train / {} held-out maps; {} "
        "batches per epoch on {}{}\n",
        o.level, o.height, o.width, o.stack.codes, o.conditional ? "conditioned on the level above" : "PixelSNAIL top prior",
        parameters / 1e6, train.codes.size(0), validation.codes.size(0), task.batches_per_epoch(), device.str(),
        run.resumed ? fmt::format(", resuming at step {}", step) : "");
  }
  const auto loop =
      run_training_loop(task, config.train, step, loop_settings(run, fmt::format("train-prior L{}", o.level), settings));
  TrainPriorResult result;
  result.steps = loop.steps;
  result.interrupted = loop.interrupted;
  if (!loop.initial.is_null()) result.initial_bits_per_code = loop.initial.at("bits_per_code");
  if (!loop.final.is_null()) {
    result.final_bits_per_code = loop.final.at("bits_per_code");
    result.final_bits_per_dim = loop.final.value("bits_per_dim", 0.0);
  }
  result.checkpoint = run.checkpoint;
  return result;
}

TrainPriorResult train_prior(const TrainPriorConfig& config, const std::string& run_dir, bool resume,
                             const RunSettings& settings) {
  return train_prior(config, read_prior_codes(config.codes), open_training_run(run_dir, PriorKind::name, resume),
                     settings);
}

}  // namespace vqvae2
