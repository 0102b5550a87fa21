#include "distributed_bench.h"

#include "vqvae2/core/error.h"
#include "vqvae2/models/prior.h"
#include "vqvae2/models/vqvae.h"
#include "vqvae2/stages/presets.h"
#include "vqvae2/training/trainer.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <ostream>
#include <vector>

namespace vqvae2::bench {

namespace {

// A ModelTask whose forward pass is one closure over a fixed synthetic batch: the training step
// (backward, gradient averaging, Adam) is the one every training stage runs.
class BenchTask : public ModelTask {
 public:
  BenchTask(std::shared_ptr<torch::nn::Module> module, std::function<torch::Tensor()> loss, int64_t rows)
      : ModelTask("bench", nlohmann::json::object(), std::move(module), 3e-4), loss_fn_(std::move(loss)), rows_(rows) {}

  int64_t batches_per_epoch() const override { return 1; }
  void start_epoch(int64_t, int64_t) override {}
  bool forward(nlohmann::json&, int64_t& images) override {
    loss_ = loss_fn_();
    images = rows_;
    return true;
  }
  nlohmann::json evaluate() override { return nlohmann::json::object(); }
  std::string summarize(const nlohmann::json&) const override { return ""; }

 private:
  std::function<torch::Tensor()> loss_fn_;
  int64_t rows_;
};

VQVAEOptions bench_vqvae_options(bool tiny) {
  auto options = vqvae_preset("mnist").model;
  if (tiny) {
    options.image_size = 16;
    options.hidden = 8;
    options.res_blocks = 1;
    options.res_channels = 4;
    options.codes = {16};
    options.code_dims = {4};
    // No dead-code restarts: their collectives come only in steps with dead codes, so the bytes of a
    // step are then exactly the formula.
    options.quantizer.dead_code_threshold = 0;
  }
  return options;
}

PriorOptions bench_prior_options(bool tiny) {
  const auto vqvae = bench_vqvae_options(tiny);
  const auto top = vqvae.levels() - 1;
  auto options = top_prior_options(top, vqvae.latent_size(top), vqvae.latent_size(top), vqvae.codes_at(top),
                                   PriorSize::kSmall);
  if (tiny) {
    options.stack.channels = 8;
    options.stack.res_channels = 8;
    options.stack.blocks = 1;
    options.stack.res_blocks = 1;
    options.stack.heads = 2;
  }
  return options;
}

}  // namespace

nlohmann::json distributed_rank(const BenchOptions& options, const DistributedBenchOptions& bench,
                                std::shared_ptr<DistributedGroup> group) {
  VQVAE2_CHECK(bench.model == "vqvae" || bench.model == "prior", "bench distributed: unknown model '{}' (vqvae, prior)",
               bench.model);
  const int64_t ranks = group ? group->size() : 1;
  const int64_t rank = group ? group->rank() : 0;
  VQVAE2_CHECK(bench.global_batch % ranks == 0, "bench distributed: the global batch {} must be divisible by {} processes",
               bench.global_batch, ranks);
  const int64_t rows = bench.global_batch / ranks;
  const auto device = torch::Device(options.device);
  torch::manual_seed(0);  // the same initial model everywhere (distribute() broadcasts rank 0's anyway)

  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor()> loss;
  int64_t expected_bytes = 0;
  if (bench.model == "vqvae") {
    const auto vqvae_options = bench_vqvae_options(bench.tiny);
    HierarchicalVQVAE model(vqvae_options);
    model->to(device);
    model->train();
    for (int64_t l = 0; l < vqvae_options.levels(); ++l) {
      if (group) model->quantizer(l).set_replicas(quantizer_sync(group));
      const auto q = vqvae_options.quantizer_at(l);
      // Per step and level: the not-finite flag, then the counts n_i [K] and, for EMA, the sums Σz [K, D].
      expected_bytes += 4 * (1 + q.codes + (q.ema ? q.codes * q.dim : 0));
    }
    torch::manual_seed(static_cast<uint64_t>(1 + rank));
    const auto x = torch::rand({rows, vqvae_options.channels, vqvae_options.image_size, vqvae_options.image_size},
                               torch::TensorOptions().device(device)) * 2 - 1;
    loss = [model, x]() mutable { return model->forward(x).loss; };
    module = model.ptr();
  } else {
    const auto prior_options = bench_prior_options(bench.tiny);
    Prior prior(prior_options);
    prior->to(device);
    prior->train();
    torch::manual_seed(static_cast<uint64_t>(1 + rank));
    const auto codes = torch::randint(0, prior_options.stack.codes, {rows, prior_options.height, prior_options.width},
                                      torch::TensorOptions().dtype(torch::kLong).device(device));
    loss = [prior, codes]() mutable { return prior->loss(codes); };
    module = prior.ptr();
  }
  int64_t parameters = 0;
  for (const auto& p : module->parameters()) parameters += p.numel();
  expected_bytes += 4 * parameters;
  if (!group) expected_bytes = 0;

  BenchTask task(module, loss, rows);
  if (group) task.distribute(group);
  const auto one_step = [&] {
    nlohmann::json figures;
    int64_t images = 0;
    task.forward(figures, images);
    task.step();
  };
  for (int64_t i = 0; i < options.warmup; ++i) one_step();
  if (group) group->barrier();
  const int64_t sent_before = group ? group->bytes_reduced() : 0;
  std::vector<double> seconds;
  const int64_t iterations = std::max<int64_t>(1, options.iterations);
  for (int64_t i = 0; i < iterations; ++i) {
    const auto start = std::chrono::steady_clock::now();
    one_step();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  const int64_t sent = group ? group->bytes_reduced() - sent_before : 0;
  if (group) group->barrier();
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];
  return {{"model", bench.model},
          {"ranks", ranks},
          {"global_batch", bench.global_batch},
          {"parameters", parameters},
          {"seconds_per_step", median},
          {"images_per_second", static_cast<double>(bench.global_batch) / median},
          {"bytes_per_step", sent / iterations},
          {"expected_bytes_per_step", expected_bytes}};
}

nlohmann::json with_efficiency(nlohmann::json results) {
  for (auto& row : results) {
    double single = 0;
    for (const auto& other : results) {
      if (other["model"] == row["model"] && other["ranks"].get<int64_t>() == 1) single = other["images_per_second"];
    }
    const auto ranks = row["ranks"].get<double>();
    row["scaling_efficiency"] = single > 0 ? row["images_per_second"].get<double>() / (ranks * single) : 0.0;
  }
  return results;
}

void print_distributed(const nlohmann::json& results, int cores, std::ostream& out) {
  out << fmt::format(
      "Data-parallel training step (ModelTask::step + GradientAverager, Gloo on 127.0.0.1), same global batch at every "
      "process count (each rank takes B/R), {} cores on this machine.\n"
      "Scaling efficiency = images/s at R / (R x images/s at 1). Here the R processes share the same {} cores ({} "
      "LibTorch threads each at R = 2), so no speed-up is possible: ~1/R efficiency is the honest expectation and the "
      "figure measures the overhead of splitting the batch and all-reducing. On several GPUs or machines it measures "
      "scaling.\n",
      cores, cores, std::max(1, cores / 2));
  out << "| model | parameters | R | global batch | batch/rank | s/step | images/s | efficiency | bytes all-reduced/step "
         "(measured) | expected (4 x params + quantizer stats) |\n|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& row : with_efficiency(results)) {
    const auto ranks = row["ranks"].get<int64_t>();
    out << fmt::format("| {} | {:.2f} M | {} | {} | {} | {:.3f} | {:.1f} | {:.2f} | {} | {} |\n",
                       row["model"].get<std::string>(), row["parameters"].get<double>() / 1e6, ranks,
                       row["global_batch"].get<int64_t>(), row["global_batch"].get<int64_t>() / ranks,
                       row["seconds_per_step"].get<double>(), row["images_per_second"].get<double>(),
                       row["scaling_efficiency"].get<double>(), row["bytes_per_step"].get<int64_t>(),
                       row["expected_bytes_per_step"].get<int64_t>());
  }
  out << "Bytes: what this rank sends into all-reduce per timed step (gradients 4 x parameters in buckets, plus per "
         "quantizer level its not-finite flag, counts [K] and EMA sums [K, D]); steps that restart dead codes send "
         "more (the serving errors of the batch and the picked rows), and the training loop adds one all-reduce of a "
         "few figures per step. With one process nothing is sent.\n";
}

}  // namespace vqvae2::bench
