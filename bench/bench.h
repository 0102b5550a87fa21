// Benchmarks: they print figures and never judge them. `vqvae2 bench <what>` runs them.
#pragma once

#include "vqvae2/core/precision.h"
#include <torch/torch.h>

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace vqvae2::bench {

struct BenchOptions {
  std::string device = "cpu";
  int64_t warmup = 1;      // untimed iterations first
  int64_t iterations = 3;  // timed iterations; the median is reported
  // Training steps (vqvae, prior) run their forward pass and loss under autocast in this precision
  // (core/precision.h), as train-vqvae and train-prior do; the peak is measured in it too.
  Precision precision = Precision::kFP32;
};

// Training images/s of the reference-width VQ-VAE at 256×256 batch 4 and 64×64 batch 16, with
// GFLOP/s and the fraction of the machine's measured peak.
void vqvae(const BenchOptions& options, std::ostream& out);

// The same VQ-VAE training step (and a BLAS-bound step) under different splits of the cores
// between LibTorch's pool and OpenBLAS's: the evidence for configure_threads' default.
void threads(const BenchOptions& options, std::ostream& out);

// Training step time of the top prior (32×32, batch 8) and the bottom prior (64×64, batch 4)
// at the reference widths, with GFLOP/s.
void prior(const BenchOptions& options, std::ostream& out);

// Seconds per 256×256 sample at the reference widths (top prior, bottom prior, decoder), cached
// sampling, for each batch size in `batches`; also the naive sampler's cost per code.
void sample(const BenchOptions& options, const std::vector<int64_t>& batches, std::ostream& out);

// Seconds per second of audio at the speech preset's audio VQ-VAE with WaveNet priors of `prior_size`
// ("small" or "reference"), untrained: the cached sampler at each batch size in `batches`, then the
// naive sampler (a full WaveNet pass per code) on one clip, timed once.
void audio_sample(const BenchOptions& options, const std::vector<int64_t>& batches, const std::string& prior_size,
                  std::ostream& out);

// Milliseconds per call of the priors' own CPU kernels (dropout's mask, ELU and the gate, forward and
// backward) and of the LibTorch operators they replace, on the bottom prior's shapes, fp32 and bf16.
void kernels(const BenchOptions& options, std::ostream& out);

// Median seconds of `fn` over options.iterations timed runs, after options.warmup untimed ones,
// waiting for `device` to finish each: the timing every benchmark here reports.
double time_median(const BenchOptions& options, const torch::Device& device, const std::function<void()>& fn);

// Best single-precision GFLOP/s this process reaches on a large matrix product and a large
// convolution with the current thread settings: the "peak" the other figures are compared to.
// With `precision` bf16 or fp16: the same products on operands of that type.
double measured_peak_gflops(const std::string& device, Precision precision = Precision::kFP32);

}  // namespace vqvae2::bench
