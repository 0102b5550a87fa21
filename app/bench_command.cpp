// The bench command: speed figures, printed (bench/ has the benchmarks themselves).
#include "cli.h"

#include "bench.h"
#include "distributed_bench.h"
#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

namespace vqvae2::cli {

namespace {

struct DistributedFlags {
  bench::DistributedBenchOptions options;
  std::vector<std::string> models = {"vqvae", "prior"};
  std::vector<int64_t> nproc_list = {1, 2};
  std::string json;
  std::string rank_json;  // set in the processes the parent starts: where rank 0 writes its figures
};

// The parent: for each model and process count, `vqvae2 bench distributed --rank-json FILE` as R
// processes (launch()), then the table of what their rank 0 measured.
int bench_distributed(const DistributedFlags& f, const bench::BenchOptions& options, const Common& common) {
  nlohmann::json results = nlohmann::json::array();
  const auto folder = std::filesystem::temp_directory_path();
  for (const auto& model : f.models) {
    for (const auto ranks : f.nproc_list) {
      VQVAE2_CHECK(ranks >= 1 && f.options.global_batch % ranks == 0,
                   "--nproc-list: {} processes cannot split --global-batch {} evenly", ranks, f.options.global_batch);
      const auto file = (folder / fmt::format("vqvae2-bench-{}-{}-{}.json", ::getpid(), model, ranks)).string();
      LaunchFlags launch_flags;
      launch_flags.nproc = ranks;
      launch_flags.announce = false;
      launch_flags.command = {"bench", "distributed", "--rank-json", file, "--model", model, "--global-batch",
                              std::to_string(f.options.global_batch), "--warmup", std::to_string(options.warmup),
                              "--iterations", std::to_string(options.iterations), "--device", common.device,
                              "--dist-timeout", std::to_string(common.dist_timeout), "--quiet"};
      if (f.options.tiny) launch_flags.command.push_back("--tiny");
      const int code = launch(launch_flags);
      VQVAE2_CHECK(code == 0, "bench distributed: the {} run with {} processes failed (exit code {})", model, ranks, code);
      std::ifstream in(file);
      VQVAE2_CHECK(in.good(), "bench distributed: rank 0 of the {} run with {} processes wrote no figures to {}", model,
                   ranks, file);
      results.push_back(nlohmann::json::parse(in));
      in.close();
      std::filesystem::remove(file);
    }
  }
  bench::print_distributed(results, available_cores(), std::cout);
  if (!f.json.empty()) {
    std::ofstream out(f.json);
    out << bench::with_efficiency(results).dump(2) << "\n";
    VQVAE2_CHECK(out.good(), "cannot write {}", f.json);
  }
  return 0;
}

// One of those processes.
int bench_distributed_rank(const DistributedFlags& f, const bench::BenchOptions& options, Common& common) {
  const auto settings = training_settings(common);
  auto rank_options = options;
  rank_options.device = settings.device;  // cuda:<local rank> under several processes
  const auto result = bench::distributed_rank(rank_options, f.options, settings.group);
  if (!settings.group || settings.group->is_main()) {
    std::ofstream out(f.rank_json);
    out << result.dump() << "\n";
    VQVAE2_CHECK(out.good(), "cannot write {}", f.rank_json);
  }
  return 0;
}

}  // namespace

Command add_bench(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand("bench", "Benchmarks: print speed figures (vqvae, prior, sample, threads, kernels)");
  struct Flags {
    std::string what = "vqvae";
    bench::BenchOptions options;
    std::vector<int64_t> batches = {1, 16};
    std::string precision = "fp32";
    std::string prior_size = "small";
    DistributedFlags distributed;
  };
  auto f = std::make_shared<Flags>();
  app->add_option("what", f->what,
                  "vqvae: VQ-VAE training images/s; prior: prior training step times; sample: seconds per 256x256 "
                  "sample (all at reference widths); threads: thread settings compared; audio: seconds per second of "
                  "audio, cached and naive WaveNet sampling; distributed: data-parallel images/s at 1, 2, ... "
                  "processes, scaling efficiency and bytes all-reduced per step; kernels: the priors' dropout, ELU "
                  "and gate kernels against the LibTorch operators they replace, ms per call")
      ->capture_default_str()
      ->check(CLI::IsMember({"vqvae", "prior", "sample", "threads", "audio", "distributed", "kernels"}));
  auto& d = f->distributed;
  app->add_option("--nproc-list", d.nproc_list, "process counts for `bench distributed`")
      ->delimiter(',')
      ->capture_default_str();
  app->add_option("--models", d.models, "models for `bench distributed`: vqvae (mnist preset), prior (small top prior)")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember({"vqvae", "prior"}));
  app->add_option("--global-batch", d.options.global_batch,
                  "`bench distributed`: images per step over all processes (each takes its share)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app->add_flag("--tiny", d.options.tiny, "`bench distributed`: tiny models (a quick check, not a benchmark)");
  app->add_option("--json", d.json, "`bench distributed`: also write the figures to this JSON file");
  app->add_option("--rank-json", d.rank_json)->group("");
  app->add_option("--model", d.options.model)->group("")->check(CLI::IsMember({"vqvae", "prior"}));
  add_distributed_flags(app, common);
  app->add_option("--batches", f->batches, "batch sizes for `bench sample`")->delimiter(',')->capture_default_str();
  app->add_option("--prior-size", f->prior_size, "WaveNet widths for `bench audio`: small or reference")
      ->capture_default_str()
      ->check(CLI::IsMember({"small", "reference"}));
  app->add_option("--warmup", f->options.warmup, "untimed iterations (for kernels, rounds of 20 calls)")
      ->capture_default_str();
  app->add_option("--iterations", f->options.iterations,
                  "timed iterations (median reported; for kernels, rounds of 20 calls)")
      ->capture_default_str();
  app->add_option("--precision", f->precision,
                  "vqvae, prior: training steps with the forward pass under autocast in fp32, bf16 or fp16 (CUDA), as "
                  "train-vqvae and train-prior --precision run them")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  add_common(app, common);
  return {app, [f, &common] {
            auto options = f->options;
            options.device = common.device;
            options.precision = parse_precision(f->precision);
            if (f->what == "distributed") {
              return f->distributed.rank_json.empty() ? bench_distributed(f->distributed, options, common)
                                                      : bench_distributed_rank(f->distributed, options, common);
            }
            if (f->what == "vqvae") {
              bench::vqvae(options, std::cout);
            } else if (f->what == "threads") {
              bench::threads(options, std::cout);
            } else if (f->what == "audio") {
              bench::audio_sample(options, f->batches, f->prior_size, std::cout);
            } else if (f->what == "kernels") {
              bench::kernels(options, std::cout);
            } else if (f->what == "prior") {
              bench::prior(options, std::cout);
            } else {
              bench::sample(options, f->batches, std::cout);
            }
            return 0;
          }};
}

}  // namespace vqvae2::cli
