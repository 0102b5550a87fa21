// vqvae2: the command-line program. Each subcommand turns its flags into one library configuration
// and makes one library call (cli.h); every error becomes one clear message and a non-zero exit status.
#include "cli.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"

#include <CLI/CLI.hpp>

#include <iostream>
#include <vector>

namespace vqvae2::cli {

RunSettings Common::settings() const {
  RunSettings s;
  s.device = device;
  s.quiet = quiet;
  s.log = &std::cerr;
  return s;
}

void add_common(CLI::App* app, Common& common) {
  app->add_option("--device", common.device, "where the math runs: cpu, cuda or cuda:N")->capture_default_str();
  app->add_option("--threads", common.threads.threads, "LibTorch threads (0 = every core this process may use)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_option("--blas-threads", common.threads.blas_threads,
                  "OpenBLAS threads (0 = recommended: 1, so BLAS calls inside LibTorch's parallel loops do not "
                  "oversubscribe the cores; see `vqvae2 bench threads`)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_flag("--quiet", common.quiet, "no progress bar");
}

namespace {

int run(int argc, char** argv) {
  CLI::App app{"vqvae2: VQ-VAE-2 (Razavi et al. 2019) in C++ on LibTorch.\n"
               "Train a hierarchical VQ-VAE on your images, priors over its codes, and sample new images.\n"
               "Start with `vqvae2 pipeline`: it runs every stage on the embedded MNIST digits."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "vqvae2 0.1.0");
  app.footer("Run `vqvae2 <command> --help` for a command's flags.");
  Common common;
  const std::vector<Command> commands = {
      add_pipeline(app, common),    add_train_vqvae(app, common), add_extract_codes(app, common),
      add_train_prior(app, common), add_sample(app, common),      add_reconstruct(app, common),
      add_encode(app, common),      add_decode(app, common),      add_evaluate(app, common),
      add_report(app, common),      add_plot(app, common),        add_bench(app, common),
      add_train_vae(app, common),   add_compare(app, common),     add_launch(app, common)};

  if (argc > 1 && argv[1][0] != '-') {
    std::vector<std::string> names;
    for (const auto& command : commands) names.push_back(command.app->get_name());
    VQVAE2_CHECK(std::find(names.begin(), names.end(), argv[1]) != names.end(), "unknown command '{}'; the commands are: {}",
                 argv[1], fmt::join(names, ", "));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  configure_threads(common.threads);
  for (const auto& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  return 1;
}

}  // namespace
}  // namespace vqvae2::cli

int main(int argc, char** argv) {
  // Before anything else: OpenBLAS reads OPENBLAS_CORETYPE only as it loads (core/device.h).
  vqvae2::restart_with_better_blas_kernels(argv);
  try {
    return vqvae2::cli::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "error: " << vqvae2::describe(e) << "\n";
    return 1;
  }
}
