// Several processes training together (training/distributed.h): `vqvae2 launch`, which starts them
// on this machine, and what a training command does when it finds itself one of them.
#include "cli.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/training/distributed.h"

#include <algorithm>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <thread>
#include <vector>

extern char** environ;

namespace vqvae2::cli {

void add_distributed_flags(CLI::App* app, Common& common) {
  app->add_option("--dist-timeout", common.dist_timeout,
                  "with several processes (vqvae2 launch, or WORLD_SIZE > 1): seconds a process waits for the others "
                  "before it fails, saying which it lost")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app->add_option("--dist-backend", common.dist_backend,
                  "with several processes: c10d backend, gloo (CPU), nccl (CUDA), or auto")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "gloo", "nccl"}));
}

void require_single_process(const std::string& what) {
  VQVAE2_CHECK(!distributed_from_environment().distributed(),
               "{} runs in one process, not under `vqvae2 launch` or WORLD_SIZE > 1 (only train-vqvae, train-prior "
               "and pipeline on images run as several processes)", what);
}

RunSettings training_settings(Common& common) {
  auto settings = common.settings();
  auto options = distributed_from_environment();
  if (!options.distributed()) return settings;
  options.timeout_seconds = common.dist_timeout;
  options.backend = common.dist_backend;
  settings.device = rank_device(common.device, options);
  // Processes on one machine share its cores; each taking them all would oversubscribe them.
  auto threads = common.threads;
  if (threads.threads == 0) threads.threads = threads_per_rank(available_cores(), options.local_world_size);
  threads = configure_threads(threads);
  if (options.rank != 0) {
    // Rank 0 speaks for the group; the others only report their errors (on stderr).
    settings.log = nullptr;
    settings.quiet = true;
    if (!std::freopen("/dev/null", "w", stdout)) std::cerr << "warning: cannot silence rank " << options.rank << "\n";
  }
  settings.group = DistributedGroup::connect(options, settings.device);
  if (settings.log) {
    *settings.log << fmt::format("vqvae2: {} processes ({}), {} on this machine, {} LibTorch threads each; the batch "
                                 "size counts the images of a step over all of them\n",
                                 options.world_size, settings.group->backend(), options.local_world_size,
                                 threads.threads);
  }
  return settings;
}

namespace {

// The launcher's children, for the signal handler (async-signal-safe: a fixed array and kill()).
constexpr int kMaxChildren = 1024;
pid_t g_children[kMaxChildren];
volatile sig_atomic_t g_child_count = 0;
volatile sig_atomic_t g_signal = 0;

extern "C" void forward_signal(int signal) {
  g_signal = signal;
  for (int i = 0; i < g_child_count; ++i) {
    if (g_children[i] > 0) ::kill(g_children[i], signal);
  }
}

// A TCP port free on `address` now (the kernel picks it; rank 0 binds it a moment later).
int free_port(const std::string& address) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  VQVAE2_CHECK(fd >= 0, "cannot open a socket to find a free port: {}", std::strerror(errno));
  sockaddr_in socket_address{};
  socket_address.sin_family = AF_INET;
  socket_address.sin_port = 0;
  if (::inet_pton(AF_INET, address.c_str(), &socket_address.sin_addr) != 1) socket_address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(socket_address);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&socket_address), sizeof(socket_address)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&socket_address), &length) == 0;
  ::close(fd);
  VQVAE2_CHECK(ok, "cannot find a free port on {}: {}; give --master-port", address, std::strerror(errno));
  return ntohs(socket_address.sin_port);
}

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

}  // namespace

int launch(const LaunchFlags& f) {
  VQVAE2_CHECK(!f.command.empty(), "launch needs a command to run");
  VQVAE2_CHECK(f.nproc >= 1 && f.nproc <= kMaxChildren, "--nproc must be in [1, {}], got {}", kMaxChildren, f.nproc);
  VQVAE2_CHECK(f.node_rank >= 0 && f.node_rank < f.nnodes, "--node-rank must be in [0, --nnodes = {}), got {}", f.nnodes,
               f.node_rank);
  VQVAE2_CHECK(f.master_port != 0 || f.nnodes == 1,
               "on several machines every launcher needs the same --master-port (and --master-addr: rank 0's machine)");
  const int port = f.master_port != 0 ? f.master_port : free_port(f.master_addr);
  const auto world = f.nproc * f.nnodes;

  // Everything the children need, built before forking (a child may only exec).
  std::vector<std::string> arguments = {"/proc/self/exe"};
  arguments.insert(arguments.end(), f.command.begin(), f.command.end());
  std::vector<char*> argv;
  for (auto& a : arguments) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::vector<std::string>> environments(f.nproc);
  std::vector<std::vector<char*>> envps(f.nproc);
  for (int64_t local = 0; local < f.nproc; ++local) {
    auto& env = environments[local];
    static const std::vector<std::string> ours = {"RANK=", "WORLD_SIZE=", "LOCAL_RANK=", "LOCAL_WORLD_SIZE=",
                                                  "MASTER_ADDR=", "MASTER_PORT=", "GROUP_RANK="};
    for (char** e = environ; *e; ++e) {
      const std::string entry(*e);
      bool replaced = false;
      for (const auto& prefix : ours) replaced = replaced || entry.rfind(prefix, 0) == 0;
      if (!replaced) env.push_back(entry);
    }
    env.push_back(fmt::format("RANK={}", f.node_rank * f.nproc + local));
    env.push_back(fmt::format("WORLD_SIZE={}", world));
    env.push_back(fmt::format("LOCAL_RANK={}", local));
    env.push_back(fmt::format("LOCAL_WORLD_SIZE={}", f.nproc));
    env.push_back(fmt::format("GROUP_RANK={}", f.node_rank));
    env.push_back("MASTER_ADDR=" + f.master_addr);
    env.push_back(fmt::format("MASTER_PORT={}", port));
    for (auto& e : env) envps[local].push_back(e.data());
    envps[local].push_back(nullptr);
  }

  if (f.announce) {
    std::cerr << fmt::format("vqvae2 launch: {} processes (ranks {}..{} of {}), rendezvous at {}:{}\n", f.nproc,
                             f.node_rank * f.nproc, (f.node_rank + 1) * f.nproc - 1, world, f.master_addr, port);
    std::cerr.flush();
  }
  // Signals go to the children while they run; the caller's handlers come back afterwards (bench
  // distributed launches several groups in turn).
  struct ForwardSignals {
    void (*interrupt)(int) = ::signal(SIGINT, forward_signal);
    void (*terminate)(int) = ::signal(SIGTERM, forward_signal);
    ~ForwardSignals() {
      ::signal(SIGINT, interrupt);
      ::signal(SIGTERM, terminate);
    }
  } forwarding;
  const pid_t launcher = ::getpid();
  std::vector<pid_t> children;
  for (int64_t local = 0; local < f.nproc; ++local) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      // Its own process group: a Ctrl-C in the terminal reaches the launcher only, which forwards it
      // once (a second signal would kill the child before its checkpoint). If the launcher dies, the
      // child is asked to stop as if it had forwarded SIGTERM.
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != launcher) ::_exit(1);
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      ::execve(argv[0], argv.data(), envps[local].data());
      ::_exit(127);
    }
    if (pid < 0) {
      forward_signal(SIGTERM);
      fail("cannot start process {} of {}: {}", local, f.nproc, std::strerror(errno));
    }
    children.push_back(pid);
    g_children[local] = pid;
    g_child_count = static_cast<sig_atomic_t>(local + 1);
  }

  // Wait for all. After the first failure the others get --grace seconds to notice and exit by
  // themselves (a dead peer fails their next collective; a hung one, within their --dist-timeout),
  // then the launcher kills whatever is left.
  std::vector<int> codes(children.size(), -1);
  size_t running = children.size();
  int failed_rank = -1;
  std::chrono::steady_clock::time_point failed_at;
  bool killed = false;
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      const auto it = std::find(children.begin(), children.end(), pid);
      if (it == children.end()) continue;
      const auto local = it - children.begin();
      codes[local] = exit_code(status);
      g_children[local] = 0;
      --running;
      if (codes[local] != 0 && codes[local] != kInterruptedExit && failed_rank < 0) {
        failed_rank = static_cast<int>(local);
        failed_at = std::chrono::steady_clock::now();
        std::cerr << fmt::format("vqvae2 launch: rank {} {}; the other ranks stop too\n",
                                 f.node_rank * f.nproc + local,
                                 WIFSIGNALED(status) ? fmt::format("was killed by signal {}", WTERMSIG(status))
                                                     : fmt::format("failed (exit code {})", codes[local]));
      }
      continue;
    }
    if (pid < 0 && errno != EINTR) break;
    if (failed_rank >= 0 && !killed &&
        std::chrono::steady_clock::now() - failed_at > std::chrono::duration<double>(f.grace)) {
      for (size_t i = 0; i < children.size(); ++i) {
        if (codes[i] < 0) {
          std::cerr << fmt::format("vqvae2 launch: rank {} did not exit within --grace {} s; killing it\n",
                                   f.node_rank * f.nproc + static_cast<int64_t>(i), f.grace);
          ::kill(children[i], SIGKILL);
        }
      }
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  g_child_count = 0;
  if (failed_rank >= 0) {
    const auto code = codes[failed_rank];
    return code > 0 && code < 128 ? code : 1;
  }
  for (const auto code : codes) {
    if (code == kInterruptedExit) return kInterruptedExit;
  }
  return 0;
}

Command add_launch(CLI::App& top, Common& common) {
  auto* app = top.add_subcommand(
      "launch", "Run a training command as several cooperating processes (data parallel, c10d): `vqvae2 launch "
                "--nproc 2 -- train-vqvae --out runs/vqvae`");
  auto f = std::make_shared<LaunchFlags>();
  app->add_option("--nproc", f->nproc, "processes on this machine (one per GPU; on CPU they share the cores)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app->add_option("--nnodes", f->nnodes, "machines taking part (start one launcher on each)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app->add_option("--node-rank", f->node_rank, "this machine's number in [0, --nnodes)")->capture_default_str();
  app->add_option("--master-addr", f->master_addr, "address of the machine with node rank 0 (it hosts the rendezvous)")
      ->capture_default_str();
  app->add_option("--master-port", f->master_port, "rendezvous port (0 = a free one; needed on several machines)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app->add_option("--grace", f->grace, "seconds the other processes get to exit after one fails, before they are killed")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app->add_option("command", f->command, "the training command and its flags, after --: train-vqvae, train-prior, pipeline")
      ->required();
  return {app, [f] {
            static const std::vector<std::string> training = {"train-vqvae", "train-prior", "pipeline"};
            VQVAE2_CHECK(!f->command.empty() &&
                             std::find(training.begin(), training.end(), f->command[0]) != training.end(),
                         "launch runs a training command ({}) as several processes, got '{}'; put it after --, e.g. "
                         "`vqvae2 launch --nproc 2 -- train-vqvae --out runs/vqvae`",
                         fmt::join(training, ", "), f->command.empty() ? std::string() : f->command[0]);
            return launch(*f);
          }};
}

}  // namespace vqvae2::cli
