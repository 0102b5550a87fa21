// `vqvae2 bench distributed`: data-parallel training throughput at 1, 2, … processes, the same
// global batch B split into R shares of B/R (training/distributed.h), through the real training
// step (ModelTask::step with its GradientAverager, quantizers synchronised by quantizer_sync).
#pragma once

#include "bench.h"
#include "vqvae2/training/distributed.h"

#include <nlohmann/json.hpp>

#include <iosfwd>
#include <memory>
#include <string>

namespace vqvae2::bench {

struct DistributedBenchOptions {
  std::string model = "vqvae";  // vqvae: the mnist preset's VQ-VAE; prior: the small top prior on its codes
  int64_t global_batch = 32;    // B: images (or code maps) per step over all processes
  bool tiny = false;            // a few-thousand-parameter model instead (for tests)
};

// One process's part (every rank of the group calls it; `group` null: one process): builds the
// model, joins it to the group, runs options.warmup untimed and options.iterations timed training
// steps on synthetic data (B/R rows each), and returns what rank 0 measured:
//   {model, ranks, global_batch, parameters, seconds_per_step (median), images_per_second,
//    bytes_per_step (measured: bytes this rank sent into collectives per timed step),
//    expected_bytes_per_step (4·parameters + Σ_levels 4·(K_l·(D_l+1) + 1) for EMA quantizers;
//    0 with one process; steps that restart dead codes send more)}. The tiny VQ-VAE restarts none.
nlohmann::json distributed_rank(const BenchOptions& options, const DistributedBenchOptions& bench,
                                std::shared_ptr<DistributedGroup> group);

// The table of measurements (one distributed_rank result per model and process count, in order),
// with scaling efficiency = images/s at R / (R × images/s at 1 for that model).
void print_distributed(const nlohmann::json& results, int cores, std::ostream& out);

// `results` with "scaling_efficiency" added to every row.
nlohmann::json with_efficiency(nlohmann::json results);

}  // namespace vqvae2::bench
