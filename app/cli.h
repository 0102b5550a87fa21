// What every vqvae2 subcommand shares: the flags of one process (device, threads, quiet), the
// shape of a subcommand, and the exit status of a run stopped by a signal. Each subcommand lives in
// the file of its stage: its flags fill one library configuration, and `run` makes the one library
// call and prints what came out. No model math and no file formats in app/.
#pragma once

#include "vqvae2/core/device.h"
#include "vqvae2/training/trainer.h"

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace vqvae2::cli {

// Exit status of a run stopped by SIGINT/SIGTERM after writing its checkpoint (128 + SIGINT, as shells do).
constexpr int kInterruptedExit = 130;

// Flags every command takes.
struct Common {
  std::string device = "cpu";
  ThreadOptions threads;
  bool quiet = false;
  double dist_timeout = 300;       // --dist-timeout (training commands)
  std::string dist_backend = "auto";
  RunSettings settings() const;  // progress and warnings to stderr
};
void add_common(CLI::App* app, Common& common);

// A subcommand of the top-level app; `run` is called when it was the one given, after parsing.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

// stage1_commands.cpp
Command add_train_vqvae(CLI::App& top, Common& common);
Command add_reconstruct(CLI::App& top, Common& common);
Command add_encode(CLI::App& top, Common& common);
Command add_decode(CLI::App& top, Common& common);
Command add_extract_codes(CLI::App& top, Common& common);
// stage2_commands.cpp
Command add_train_prior(CLI::App& top, Common& common);
Command add_sample(CLI::App& top, Common& common);
// pipeline_command.cpp
Command add_pipeline(CLI::App& top, Common& common);
// inspect_commands.cpp
Command add_evaluate(CLI::App& top, Common& common);
Command add_report(CLI::App& top, Common& common);
Command add_plot(CLI::App& top, Common& common);
// vae_commands.cpp
Command add_train_vae(CLI::App& top, Common& common);
// compare_command.cpp
Command add_compare(CLI::App& top, Common& common);
// bench_command.cpp
Command add_bench(CLI::App& top, Common& common);
// launch_command.cpp
Command add_launch(CLI::App& top, Common& common);
// `vqvae2 launch`'s settings: `command` (vqvae2's own arguments) runs as nproc processes of this
// binary with the PyTorch rendezvous environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT).
struct LaunchFlags {
  int64_t nproc = 2, nnodes = 1, node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;  // 0: a free one
  double grace = 30;
  std::vector<std::string> command;
  bool announce = true;  // one line on stderr saying what started
};
// Starts the processes and waits for them all; returns the first failure's exit code (0: all ended well).
int launch(const LaunchFlags& flags);
// The flags of a training command that can run as several processes (--dist-timeout, --dist-backend).
void add_distributed_flags(CLI::App* app, Common& common);
// The settings of a training command: with WORLD_SIZE > 1 in the environment, this process joins
// the others (rank 0 logs; the rest print nothing but errors) and takes its share of the cores.
RunSettings training_settings(Common& common);
// Throws vqvae2::Error when this process is one of several (WORLD_SIZE > 1 in the environment):
// `what` runs in one process only, and several copies would each train and write the same run.
void require_single_process(const std::string& what);

}  // namespace vqvae2::cli
