// The bench command: speed figures, printed (bench/ has the benchmarks themselves).
#include "cli.h"

#include "bench.h"
#include "vqvae2/core/error.h"

#include <iostream>
#include <memory>

namespace vqvae2::cli {

Command add_bench(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand("bench", "Benchmarks: print speed figures (vqvae, prior, sample, threads)");
  struct Flags {
    std::string what = "vqvae";
    bench::BenchOptions options;
    std::vector<int64_t> batches = {1, 16};
    std::string precision = "fp32";
    std::string prior_size = "small";
  };
  auto f = std::make_shared<Flags>();
  app->add_option("what", f->what,
                  "vqvae: VQ-VAE training images/s; prior: prior training step times; sample: seconds per 256x256 "
                  "sample (all at reference widths); threads: thread settings compared; audio: seconds per second of "
                  "audio, cached and naive WaveNet sampling")
      ->capture_default_str()
      ->check(CLI::IsMember({"vqvae", "prior", "sample", "threads", "audio"}));
  app->add_option("--batches", f->batches, "batch sizes for `bench sample`")->delimiter(',')->capture_default_str();
  app->add_option("--prior-size", f->prior_size, "WaveNet widths for `bench audio`: small or reference")
      ->capture_default_str()
      ->check(CLI::IsMember({"small", "reference"}));
  app->add_option("--warmup", f->options.warmup, "untimed iterations")->capture_default_str();
  app->add_option("--iterations", f->options.iterations, "timed iterations (median reported)")->capture_default_str();
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
            if (f->what == "vqvae") {
              bench::vqvae(options, std::cout);
            } else if (f->what == "threads") {
              bench::threads(options, std::cout);
            } else if (f->what == "audio") {
              bench::audio_sample(options, f->batches, f->prior_size, std::cout);
            } else if (f->what == "prior") {
              bench::prior(options, std::cout);
            } else {
              bench::sample(options, f->batches, std::cout);
            }
            return 0;
          }};
}

}  // namespace vqvae2::cli
