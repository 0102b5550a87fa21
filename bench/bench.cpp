#include "bench.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/memory.h"
#include "vqvae2/models/audio_sampler.h"
#include "vqvae2/models/prior.h"
#include "vqvae2/models/sampler.h"
#include "vqvae2/models/vqvae.h"
#include "vqvae2/stages/presets.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <ostream>
#include <vector>

namespace vqvae2::bench {

namespace {

// "1 BLAS threads, OpenBLAS SkylakeX kernels, jemalloc 5.3.0 (…)": which kernels ran matters as much
// as how many threads (core/device.h), and the allocator decides how often a step faults pages in
// (core/memory.h).
std::string cpu_settings() {
  const auto kernels = blas_kernels();
  const auto blas = kernels.empty() ? fmt::format("{} BLAS threads", blas_threads())
                                    : fmt::format("{} BLAS threads, OpenBLAS {} kernels", blas_threads(), kernels);
  return fmt::format("{}, {}", blas, heap_allocator());
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

VQVAEOptions reference_widths(int64_t image_size) {
  VQVAEOptions options;  // defaults are the paper's: h 128, 2 res blocks of 32, D 64, K 512, strides {4, 2}
  options.image_size = image_size;
  return options;
}

struct StepTiming {
  double seconds = 0;
  double gflop = 0;  // per step: forward + backward ≈ 3 × forward
};

StepTiming vqvae_step(const BenchOptions& options, const torch::Device& device, int64_t image_size, int64_t batch) {
  torch::manual_seed(0);
  HierarchicalVQVAE model(reference_widths(image_size));
  model->to(device);
  model->train();
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(3e-4));
  const auto x = torch::rand({batch, 3, image_size, image_size}, torch::TensorOptions().device(device)) * 2 - 1;
  StepTiming timing;
  timing.seconds = time_median(options, device, [&] {
    optimizer.zero_grad();
    torch::Tensor loss;
    {
      const AutocastGuard autocast(options.precision, device);
      loss = model->forward(x).loss;
    }
    loss.backward();
    optimizer.step();
  });
  timing.gflop = 3.0 * 2.0 * static_cast<double>(model->forward_macs()) * static_cast<double>(batch) / 1e9;
  return timing;
}

}  // namespace

double time_median(const BenchOptions& options, const torch::Device& device, const std::function<void()>& fn) {
  for (int64_t i = 0; i < options.warmup; ++i) fn();
  synchronize(device);
  std::vector<double> seconds;
  for (int64_t i = 0; i < std::max<int64_t>(1, options.iterations); ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    synchronize(device);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

double measured_peak_gflops(const std::string& device_name, Precision precision) {
  const auto device = parse_device(device_name);
  const BenchOptions options{device_name, 1, 3};
  const auto on = torch::TensorOptions().device(device).dtype(scalar_type(precision));
  const int64_t n = 2048;
  const auto a = torch::randn({n, n}, on), b = torch::randn({n, n}, on);
  const double matmul = 2.0 * n * n * n / 1e9 / time_median(options, device, [&] { torch::mm(a, b); });
  const auto x = torch::randn({16, 128, 64, 64}, on), w = torch::randn({128, 128, 3, 3}, on);
  const double conv_gflop = 2.0 * 16 * 64 * 64 * 128 * 128 * 9 / 1e9;
  const double conv = conv_gflop / time_median(options, device, [&] { torch::conv2d(x, w, {}, 1, 1); });
  // The same convolution in the channels-last layout, oneDNN's own: on some CPUs (AMD Zen 5 with
  // AVX-512) it runs at twice the NCHW speed, and a peak without it would read our steps as over 100%.
  const auto cl = at::MemoryFormat::ChannelsLast;
  const auto x_cl = x.contiguous(cl), w_cl = w.contiguous(cl);
  const double conv_cl = conv_gflop / time_median(options, device, [&] { torch::conv2d(x_cl, w_cl, {}, 1, 1); });
  return std::max({matmul, conv, conv_cl});
}

void vqvae(const BenchOptions& options, std::ostream& out) {
  const auto device = parse_device(options.device);
  check_precision(options.precision, device);
  const double peak = measured_peak_gflops(options.device, options.precision);
  out << fmt::format("VQ-VAE-2 training step, reference widths (h 128, 2x32 res, K 512, D 64), {} ({} LibTorch "
                     "threads, {}), precision {}\n",
                     device.str(), at::get_num_threads(), cpu_settings(), to_string(options.precision));
  out << fmt::format("measured peak: {:.1f} GFLOP/s in {} (best of a 2048^3 matmul and a 128->128 3x3 conv, NCHW or channels-last)\n", peak,
                     to_string(options.precision));
  out << "| image | batch | s/step | images/s | GFLOP/step | GFLOP/s | of peak |\n";
  out << "|---|---|---|---|---|---|---|\n";
  for (const auto& [size, batch] : std::vector<std::pair<int64_t, int64_t>>{{256, 4}, {64, 16}}) {
    const auto t = vqvae_step(options, device, size, batch);
    out << fmt::format("| {}x{} | {} | {:.3f} | {:.1f} | {:.1f} | {:.1f} | {:.0f}% |\n", size, size, batch, t.seconds,
                       batch / t.seconds, t.gflop, t.gflop / t.seconds, 100 * t.gflop / t.seconds / peak);
    out.flush();
  }
}

void threads(const BenchOptions& options, std::ostream& out) {
  const auto device = parse_device(options.device);
  const int cores = available_cores();
  const int torch_before = at::get_num_threads(), blas_before = blas_threads();
  out << fmt::format("Thread settings on {} cores (the step is the reference VQ-VAE at 64x64, batch 16; the "
                     "matmul column is a 1024^3 product, the BLAS-bound part of attention and linear layers)\n",
                     cores);
  out << "| LibTorch threads | OpenBLAS threads | VQ-VAE s/step | matmul GFLOP/s |\n|---|---|---|---|\n";
  const auto on = torch::TensorOptions().device(device);
  const auto a = torch::randn({1024, 1024}, on), b = torch::randn({1024, 1024}, on);
  std::vector<std::pair<int, int>> settings = {{cores, 1}, {cores, cores}, {1, cores}};
  if (cores == 1) settings = {{1, 1}};
  for (const auto& [torch_threads, openblas_threads] : settings) {
    at::set_num_threads(torch_threads);
    set_blas_threads(openblas_threads);
    const auto step = vqvae_step(options, device, 64, 16);
    const double matmul = 2.0 * 1024 * 1024 * 1024 / 1e9 / time_median(options, device, [&] { torch::mm(a, b); });
    out << fmt::format("| {} | {} | {:.3f} | {:.1f} |\n", torch_threads, openblas_threads, step.seconds, matmul);
    out.flush();
  }
  at::set_num_threads(torch_before);
  set_blas_threads(std::max(1, blas_before));
}

namespace {

// The reference two-level setting: 256×256 images, top 32×32, bottom 64×64, K = 512.
Prior reference_top() { return Prior(top_prior_options(1, 32, 32, 512, PriorSize::kReference)); }
Prior reference_bottom() { return Prior(conditional_prior_options(0, 64, 64, 512, 512, 2, PriorSize::kReference)); }

}  // namespace

void prior(const BenchOptions& options, std::ostream& out) {
  const auto device = parse_device(options.device);
  check_precision(options.precision, device);
  const double peak = measured_peak_gflops(options.device, options.precision);
  out << fmt::format("Prior training step, reference widths (C 256, 4 blocks x 4 gated layers, 8 heads), {} ({} "
                     "LibTorch threads, {}), precision {}; measured peak {:.1f} GFLOP/s in {}\n",
                     device.str(), at::get_num_threads(), cpu_settings(), to_string(options.precision), peak,
                     to_string(options.precision));
  out << "| prior | map | batch | parameters | s/step | GFLOP/step | GFLOP/s | of peak |\n|---|---|---|---|---|---|---|---|\n";
  struct Case {
    const char* name;
    Prior prior;
    int64_t batch;
  };
  torch::manual_seed(0);
  std::vector<Case> cases;
  cases.push_back({"top (PixelSNAIL)", reference_top(), 8});
  cases.push_back({"bottom (conditional)", reference_bottom(), 4});
  for (auto& c : cases) {
    c.prior->to(device);
    c.prior->train();
    const auto& o = c.prior->options();
    torch::optim::Adam optimizer(c.prior->parameters(), torch::optim::AdamOptions(3e-4));
    const auto on = torch::TensorOptions().dtype(torch::kLong).device(device);
    const auto codes = torch::randint(0, o.stack.codes, {c.batch, o.height, o.width}, on);
    const auto condition = o.conditional ? torch::randint(0, o.condition.codes, {c.batch, o.height / 2, o.width / 2}, on)
                                         : torch::Tensor();
    const double seconds = time_median(options, device, [&] {
      optimizer.zero_grad();
      torch::Tensor loss;
      {
        const AutocastGuard autocast(options.precision, device);
        loss = c.prior->loss(codes, condition);
      }
      loss.backward();
      optimizer.step();
    });
    int64_t parameters = 0;
    for (const auto& p : c.prior->parameters()) parameters += p.numel();
    const double gflop = 3.0 * 2.0 * static_cast<double>(c.prior->forward_macs()) * static_cast<double>(c.batch) / 1e9;
    out << fmt::format("| {} | {}x{} | {} | {:.1f} M | {:.2f} | {:.0f} | {:.1f} | {:.0f}% |\n", c.name, o.height, o.width,
                       c.batch, parameters / 1e6, seconds, gflop, gflop / seconds, 100 * gflop / seconds / peak);
    out.flush();
  }
}

void sample(const BenchOptions& options, const std::vector<int64_t>& batches, std::ostream& out) {
  const auto device = parse_device(options.device);
  torch::manual_seed(0);
  HierarchicalVQVAE vqvae(reference_widths(256));
  std::vector<Prior> priors = {reference_bottom(), reference_top()};
  vqvae->to(device);
  for (auto& p : priors) p->to(device);
  out << fmt::format("Ancestral sampling of 256x256 images at reference widths (top 32x32 PixelSNAIL, bottom 64x64 "
                     "conditional, K 512), cached sampler, {} ({} LibTorch threads, {})\n",
                     device.str(), at::get_num_threads(), cpu_settings());
  out << "| batch | top s | bottom s | decode s | total s | s/image |\n|---|---|---|---|---|---|\n";
  for (const auto batch : batches) {
    const auto result = sample_hierarchy(vqvae, priors, batch, {}, 0);
    const double total = result.seconds[0] + result.seconds[1] + result.seconds[2];
    out << fmt::format("| {} | {:.1f} | {:.1f} | {:.2f} | {:.1f} | {:.2f} |\n", batch, result.seconds[1],
                       result.seconds[0], result.seconds[2], total, total / batch);
    out.flush();
  }
  // The naive loop costs one full forward pass per code: time one pass of each prior at batch 1.
  torch::InferenceMode inference;
  const auto on = torch::TensorOptions().dtype(torch::kLong).device(device);
  const auto top_codes = torch::zeros({1, 32, 32}, on), bottom_codes = torch::zeros({1, 64, 64}, on);
  for (auto& p : priors) p->eval();
  const double top_pass = time_median(options, device, [&] { priors[1]->forward(top_codes); });
  const double bottom_pass = time_median(options, device, [&] { priors[0]->forward(bottom_codes, top_codes); });
  out << fmt::format("naive sampler (one full pass per code), batch 1: top {:.3f} s/pass x 1024 = {:.0f} s, bottom "
                     "{:.3f} s/pass x 4096 = {:.0f} s, total {:.0f} s\n",
                     top_pass, top_pass * 1024, bottom_pass, bottom_pass * 4096, top_pass * 1024 + bottom_pass * 4096);
}

void audio_sample(const BenchOptions& options, const std::vector<int64_t>& batches, const std::string& prior_size,
                  std::ostream& out) {
  const auto device = parse_device(options.device);
  const auto model = audio_vqvae_preset("speech").model;
  const auto size = wavenet_size(parse_prior_size(prior_size));
  torch::manual_seed(0);
  AudioVQVAE vqvae(model);
  std::vector<WaveNet> priors;
  for (int64_t l = 0; l < model.levels(); ++l) {
    const auto length = model.latent_length(l);
    priors.emplace_back(l + 1 == model.levels() ? wavenet_options(l, length, model.codes_at(l), size)
                                                : conditional_wavenet_options(l, length, model.codes_at(l),
                                                                              model.codes_at(l + 1),
                                                                              model.strides[l + 1], size));
  }
  vqvae->to(device);
  for (auto& p : priors) p->to(device);
  const double clip_seconds = static_cast<double>(model.clip_length) / static_cast<double>(model.sample_rate);
  out << fmt::format("Ancestral sampling of {:.3f} s clips at {} Hz (speech preset: {} levels, {} / {} codes a clip, "
                     "K {}), {} WaveNets (receptive fields {} / {} codes), {} ({} LibTorch threads)\n",
                     clip_seconds, model.sample_rate, model.levels(), model.latent_length(0),
                     model.latent_length(model.levels() - 1), model.codes_at(0), prior_size,
                     priors[0]->options().receptive_field(), priors.back()->options().receptive_field(), device.str(),
                     at::get_num_threads());
  out << "| sampler | batch | top s | bottom s | decode s | total s | s per second of audio |\n|---|---|---|---|---|---|---|\n";
  const auto row = [&](const char* name, int64_t batch, bool naive) {
    const auto result = sample_audio_hierarchy(vqvae, priors, batch, 0, {}, 0, naive);
    double total = 0;
    for (const auto s : result.seconds) total += s;
    out << fmt::format("| {} | {} | {:.2f} | {:.2f} | {:.3f} | {:.2f} | {:.2f} |\n", name, batch,
                       result.seconds[model.levels() - 1], result.seconds[0], result.seconds.back(), total,
                       total / (static_cast<double>(batch) * clip_seconds));
    out.flush();
  };
  for (const auto batch : batches) row("cached", batch, false);
  row("naive", 1, true);
}

}  // namespace vqvae2::bench
