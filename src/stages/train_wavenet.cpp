#include "vqvae2/stages/train_wavenet.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/metrics.h"
#include "vqvae2/data/data.h"
#include "vqvae2/stages/presets.h"

#include <cmath>
#include <numeric>

namespace vqvae2 {

bool is_audio_codes(const CodeStore& store) { return store.meta.value("modality", std::string()) == "audio"; }

SequenceCodes sequence_codes(const CodeStore& store, int64_t level) {
  const auto levels = static_cast<int64_t>(store.levels.size());
  VQVAE2_CHECK(level >= 0 && level < levels, "level {} does not exist: the code store has levels 0..{}", level,
               levels - 1);
  for (int64_t l = level; l < std::min(levels, level + 2); ++l) {
    VQVAE2_CHECK(store.levels[l].height == 1, "level {} of the code store holds {}x{} maps, not code sequences; a "
                 "WaveNet models the codes of an audio VQ-VAE", l, store.levels[l].height, store.levels[l].width);
  }
  SequenceCodes out;
  out.codes = store.codes[level].squeeze(1);  // [N, 1, T] -> [N, T]
  if (level + 1 < levels) out.condition = store.codes[level + 1].squeeze(1);
  return out;
}

double evaluate_wavenet(WaveNet& prior, const SequenceCodes& data, int64_t batch_size, const torch::Device& device) {
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

TrainWaveNetConfig wavenet_config_for(const PriorCodes& codes, int64_t level, PriorSize size) {
  const auto& store = codes.train;
  VQVAE2_CHECK(is_audio_codes(store), "'{}' holds image codes; a WaveNet prior is for the codes of an audio VQ-VAE",
               codes.folder);
  const auto levels = static_cast<int64_t>(store.levels.size());
  VQVAE2_CHECK(level >= 0 && level < levels, "level {} does not exist: the code store has levels 0..{}", level,
               levels - 1);
  const auto& l = store.levels[level];
  TrainWaveNetConfig config;
  if (level == levels - 1) {
    config.model = wavenet_options(level, l.width, l.codes, wavenet_size(size));
  } else {
    const auto& above = store.levels[level + 1];
    VQVAE2_CHECK(l.height == 1 && above.height == 1 && l.width % above.width == 0,
                 "level {} ({} codes) is not an integer upsampling of level {} ({} codes)", level, l.width, level + 1,
                 above.width);
    config.model = conditional_wavenet_options(level, l.width, l.codes, above.codes, l.width / above.width,
                                               wavenet_size(size));
  }
  config.codes = codes.folder;
  config.train = wavenet_schedule(size);
  const auto clip_length = store.meta.value("clip_length", int64_t{0});
  config.samples_per_code = clip_length > 0 && clip_length % l.width == 0 ? clip_length / l.width : 0;
  return config;
}

namespace {

class WaveNetTask : public ModelTask {
 public:
  WaveNetTask(const TrainWaveNetConfig& config, WaveNet prior, torch::Device device, SequenceCodes train,
              SequenceCodes validation)
      : ModelTask(WaveNetKind::name, config, prior.ptr(), config.train.learning_rate),
        config_(config),
        prior_(std::move(prior)),
        device_(device),
        train_(std::move(train)),
        validation_(std::move(validation)) {
    all_.resize(train_.codes.size(0));
    std::iota(all_.begin(), all_.end(), 0);
  }

  int64_t batches_per_epoch() const override { return static_cast<int64_t>(all_.size()) / config_.train.batch_size; }

  void start_epoch(int64_t epoch, int64_t first_batch) override {
    order_ = torch::tensor(shuffled_order(all_, config_.train.seed, epoch), torch::kLong);
    next_batch_ = first_batch;
  }

  bool forward(nlohmann::json& figures, int64_t& items) override {
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
    items = b;
    return true;
  }

  nlohmann::json evaluate() override {
    const auto nats = evaluate_wavenet(prior_, validation_, config_.train.batch_size, device_);
    const double bits = bits_from_nats(nats);
    nlohmann::json e = {{"nll_nats", nats}, {"bits_per_code", bits}, {"codes", validation_.codes.size(0)}};
    if (config_.samples_per_code > 0) e["bits_per_dim"] = bits / static_cast<double>(config_.samples_per_code);
    return e;
  }

  std::string summarize(const nlohmann::json& e) const override {
    return fmt::format("held-out NLL {:.3f} bits per code (uniform: {:.3f}){}", e.at("bits_per_code").get<double>(),
                       std::log2(static_cast<double>(prior_->options().codes)),
                       e.contains("bits_per_dim")
                           ? fmt::format(", {:.4f} bits per audio sample", e.at("bits_per_dim").get<double>())
                           : "");
  }

 private:
  TrainWaveNetConfig config_;
  WaveNet prior_;
  torch::Device device_;
  SequenceCodes train_, validation_;
  std::vector<int64_t> all_;
  torch::Tensor order_;
  int64_t next_batch_ = 0;
};

}  // namespace

TrainPriorResult train_wavenet(const TrainWaveNetConfig& config, const PriorCodes& codes, const TrainingRun& run,
                               const RunSettings& settings) {
  config.validate();
  const auto device = parse_device(settings.device);
  const auto& o = config.model;
  for (const auto* store : {&codes.train, &codes.validation}) {
    const auto levels = static_cast<int64_t>(store->levels.size());
    VQVAE2_CHECK(is_audio_codes(*store) && o.level < levels && store->levels[o.level].height == 1 &&
                     store->levels[o.level].width == o.length && store->levels[o.level].codes == o.codes &&
                     o.conditional == (o.level + 1 < levels) &&
                     (!o.conditional || (store->levels[o.level + 1].codes == o.condition_codes &&
                                         store->levels[o.level + 1].width * o.condition_scale == o.length)),
                 "the codes in '{}' do not match this WaveNet (level {}, {} codes, K={}); train the prior on the codes "
                 "it was configured for",
                 codes.folder, o.level, o.length, o.codes);
  }
  auto train = sequence_codes(codes.train, o.level);
  auto validation = sequence_codes(codes.validation, o.level);
  if (validation.codes.size(0) == 0) {
    if (settings.log) *settings.log << "warning: no held-out codes: evaluating on the training codes\n";
    validation = train;
  }

  seed_everything(config.train.seed);
  WaveNet prior(config.model);
  prior->to(device);
  WaveNetTask task(config, prior, device, train, validation);
  const auto step = start_training(task, run, config);
  if (settings.log) {
    int64_t parameters = 0;
    for (const auto& p : prior->parameters()) parameters += p.numel();
    *settings.log << fmt::format(
        "vqvae2 train-prior: level {} ({} codes, K={}, WaveNet{}, receptive field {} codes), {:.2f} M parameters; {} "
        "train / {} held-out sequences; {} batches per epoch on {}{}\n",
        o.level, o.length, o.codes, o.conditional ? " conditioned on the level above" : "", o.receptive_field(),
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

TrainPriorResult train_wavenet(const TrainWaveNetConfig& config, const std::string& run_dir, bool resume,
                               const RunSettings& settings) {
  return train_wavenet(config, read_prior_codes(config.codes), open_training_run(run_dir, WaveNetKind::name, resume),
                       settings);
}

}  // namespace vqvae2
