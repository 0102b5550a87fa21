// Data-parallel training (training/distributed.h): the c10d group and the gradient averaging with two
// ranks as two threads of this process, then `vqvae2 launch` end to end: two processes give what
// one process gives on the combined batch, a lost or hung rank ends the group within the timeout,
// and a run resumes with another number of processes. All traffic is on 127.0.0.1, ports are free
// ones the kernel picks, and every test ends by itself.
#include "test_util.h"

#include "vqvae2/stages/trained.h"
#include "vqvae2/training/distributed.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

namespace vqvae2 {
namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

DistributedOptions two_ranks(int64_t rank, int port, double timeout = 20) {
  DistributedOptions o;
  o.rank = rank;
  o.world_size = 2;
  o.local_world_size = 2;
  o.local_rank = rank;
  o.master_port = port;
  o.timeout_seconds = timeout;
  return o;
}

// Runs `body(rank)` for ranks 0 and 1 on two threads; failures of either are reported.
void on_two_ranks(const std::function<void(int64_t)>& body) {
  std::string errors[2];
  std::thread ranks[2];
  for (int64_t r = 0; r < 2; ++r) {
    ranks[r] = std::thread([&, r] {
      try {
        body(r);
      } catch (const std::exception& e) {
        errors[r] = describe(e);
      }
    });
  }
  for (auto& t : ranks) t.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
}

TEST(Distributed, OptionsComeFromTheEnvironmentInPyTorchsConvention) {
  for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}) {
    ::unsetenv(name);
  }
  EXPECT_FALSE(distributed_from_environment().distributed());
  ::setenv("WORLD_SIZE", "4", 1);
  test::expect_error([] { distributed_from_environment(); }, "RANK is not set");
  ::setenv("RANK", "3", 1);
  ::setenv("LOCAL_RANK", "1", 1);
  ::setenv("LOCAL_WORLD_SIZE", "2", 1);
  test::expect_error([] { distributed_from_environment(); }, "MASTER_ADDR or MASTER_PORT is not set");
  ::setenv("MASTER_ADDR", "10.0.0.1", 1);
  ::setenv("MASTER_PORT", "29511", 1);
  const auto o = distributed_from_environment();
  EXPECT_EQ(o.rank, 3);
  EXPECT_EQ(o.world_size, 4);
  EXPECT_EQ(o.local_rank, 1);
  EXPECT_EQ(o.master_addr, "10.0.0.1");
  EXPECT_EQ(o.master_port, 29511);
  ::setenv("RANK", "4", 1);
  test::expect_error([] { distributed_from_environment(); }, "RANK must be in [0, WORLD_SIZE = 4)");
  ::setenv("MASTER_PORT", "http", 1);
  test::expect_error([] { distributed_from_environment(); }, "MASTER_PORT must be an integer");
  for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}) {
    ::unsetenv(name);
  }
}

TEST(Distributed, RanksGetTheirOwnSeedsDevicesAndShareOfTheCores) {
  EXPECT_EQ(rank_seed(42, 0), 42u);  // rank 0 draws what one process would
  EXPECT_NE(rank_seed(42, 1), rank_seed(42, 2));
  EXPECT_NE(rank_seed(42, 1), 42u);
  EXPECT_EQ(threads_per_rank(2, 2), 1);
  EXPECT_EQ(threads_per_rank(16, 3), 5);
  EXPECT_EQ(threads_per_rank(2, 4), 1);  // never zero
  auto o = two_ranks(1, 29500);
  EXPECT_EQ(rank_device("cuda", o), "cuda:1");
  EXPECT_EQ(rank_device("cpu", o), "cpu");
  EXPECT_NE(distributed_backends().find("gloo"), std::string::npos);
}

TEST(Distributed, CollectivesSumBroadcastAndAverageOverRanks) {
  const int port = free_port();
  on_two_ranks([port](int64_t r) {
    auto group = DistributedGroup::connect(two_ranks(r, port), "cpu");
    EXPECT_EQ(group->backend(), "gloo");
    auto a = torch::full({3}, static_cast<float>(r + 1));
    auto b = torch::full({2, 2}, static_cast<float>(10 * (r + 1)));
    group->sum({a, b});
    EXPECT_TRUE(torch::equal(a, torch::full({3}, 3.0f)));
    EXPECT_TRUE(torch::equal(b, torch::full({2, 2}, 30.0f)));
    auto c = torch::full({4}, static_cast<int64_t>(r + 7));
    group->broadcast({c});
    EXPECT_TRUE(torch::equal(c, torch::full({4}, static_cast<int64_t>(7))));
    EXPECT_EQ(group->sum(std::vector<double>{0.5, static_cast<double>(r)}), (std::vector<double>{1.0, 1.0}));
    nlohmann::json figures = {{"loss", 2.0 * static_cast<double>(r)}, {"usage", {1.0, 3.0 * static_cast<double>(r)}}};
    EXPECT_TRUE(average_figures(*group, figures, r == 1));  // a stop asked on one rank stops both
    EXPECT_DOUBLE_EQ(figures["loss"].get<double>(), 1.0);
    EXPECT_DOUBLE_EQ(figures["usage"][1].get<double>(), 1.5);
    // rank 0's work runs once; the others wait for it and learn of its failure.
    int runs = 0;
    group->on_main([&] { ++runs; });
    EXPECT_EQ(runs, r == 0 ? 1 : 0);
    test::expect_error([&] { group->on_main([] { fail("disk full"); }); }, r == 0 ? "disk full" : "rank 0 failed");
    EXPECT_GT(group->bytes_reduced(), 0);
  });
}

// A two-layer network whose weights are a function of nothing random, and its loss on `x`.
struct Net {
  torch::nn::Linear a{nullptr}, b{nullptr};
  Net() : a(torch::nn::Linear(3, 5)), b(torch::nn::Linear(5, 2)) {
    torch::NoGradGuard no_grad;
    for (auto* layer : {&a, &b}) {
      for (auto& p : (*layer)->parameters()) p.copy_(torch::linspace(-1, 1, p.numel()).view(p.sizes()));
    }
  }
  std::vector<torch::Tensor> parameters() {
    auto p = a->parameters();
    for (auto& q : b->parameters()) p.push_back(q);
    return p;
  }
  torch::Tensor loss(const torch::Tensor& x) { return b(torch::tanh(a(x))).pow(2).mean(); }
};

TEST(Distributed, GradientsAreThoseOfTheWholeBatch) {
  const int port = free_port();
  const auto batch = torch::linspace(-2, 3, 8 * 3).view({8, 3});
  Net whole;
  whole.loss(batch).backward();
  on_two_ranks([&](int64_t r) {
    auto options = two_ranks(r, port);
    options.bucket_mb = 40.0 / (1 << 20);  // 40 bytes: a bucket for every parameter or two
    auto group = DistributedGroup::connect(options, "cpu");
    Net net;
    GradientAverager averager(group, net.parameters());
    EXPECT_EQ(averager.buckets(), 2);  // [b.bias, b.weight], [a.bias, a.weight]: backward's order
    EXPECT_EQ(averager.bytes_per_step(), (5 * 3 + 5 + 2 * 5 + 2) * 4);
    for (int step = 0; step < 2; ++step) {  // twice: the averager re-arms each step
      for (auto& p : net.parameters()) p.mutable_grad() = torch::Tensor();
      averager.prepare();
      net.loss(batch.slice(0, 4 * r, 4 * (r + 1))).backward();
      averager.finish();
      const auto expected = whole.parameters();
      const auto got = net.parameters();
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_TRUE(torch::allclose(got[i].grad(), expected[i].grad(), 1e-5, 1e-6)) << "parameter " << i;
      }
    }
  });
}

TEST(Distributed, AMissingRankIsReportedWithinTheTimeout) {
  const auto start = std::chrono::steady_clock::now();
  test::expect_error([] { DistributedGroup::connect(two_ranks(0, free_port(), 1.0), "cpu"); },
                     "cannot meet the other ranks");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
}

TEST(Distributed, ARankThatLeavesMakesTheOthersFail) {
  const int port = free_port();
  on_two_ranks([port](int64_t r) {
    auto group = DistributedGroup::connect(two_ranks(r, port, 2.0), "cpu");
    group->barrier();
    if (r == 1) return;  // leaves: its group closes its connections
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    test::expect_error([&] { group->sum(std::vector<double>{1.0}); }, "Another rank has probably stopped");
  });
}

// ---- the launcher, end to end ---------------------------------------------------------------------

const std::string kTiny =
    " --image-size 16 --hidden 16 --res-blocks 1 --res-channels 8 --codes 32 --code-dims 8 --limit 128 --quiet"
    " --threads 1 --log-every 1 --checkpoint-every 1000";

// Every parameter and buffer of two modules agree within float tolerance.
void expect_same_state(const torch::nn::Module& a, const torch::nn::Module& b, double tolerance) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& item : pa) {
    EXPECT_TRUE(torch::allclose(item.value(), pb[item.key()], tolerance, tolerance))
        << item.key() << " differs by " << (item.value() - pb[item.key()]).abs().max().item<double>();
  }
  auto ba = a.named_buffers(), bb = b.named_buffers();
  ASSERT_EQ(ba.size(), bb.size());
  for (const auto& item : ba) {
    const auto x = item.value().to(torch::kDouble), y = bb[item.key()].to(torch::kDouble);
    EXPECT_TRUE(torch::allclose(x, y, tolerance, tolerance))
        << "buffer " << item.key() << " differs by " << (x - y).abs().max().item<double>();
  }
}

void expect_ok(const test::CommandResult& result) { ASSERT_EQ(result.exit_code, 0) << result.output; }

TEST(Launch, TwoProcessesTrainTheVQVAEAsOneProcessOnTheCombinedBatch) {
  test::TempDir dir;
  // EMA quantizers with data initialisation and dead-code restarts: the codebooks agree only if the
  // statistics and the restarts are shared.
  const auto flags = kTiny + " --batch-size 16 --steps 5 --dead-code-threshold 1";
  expect_ok(test::run_vqvae2("train-vqvae --out " + dir.file("one") + flags));
  const auto two = test::run_vqvae2("launch --nproc 2 -- train-vqvae --out " + dir.file("two") + flags);
  expect_ok(two);
  EXPECT_NE(two.output.find("2 processes (gloo)"), std::string::npos) << two.output;
  const auto one_model = load<VQVAEKind>(dir.file("one"), torch::kCPU);
  const auto two_model = load<VQVAEKind>(dir.file("two"), torch::kCPU);
  EXPECT_EQ(two_model.step, 5);
  expect_same_state(*one_model.model, *two_model.model, 2e-4);
  // Rank 0 alone writes: one metrics line per step, recording the number of processes.
  const auto metrics = test::read_text(dir.file("two/metrics.jsonl"));
  EXPECT_NE(metrics.find("\"ranks\":2"), std::string::npos) << metrics;
}

TEST(Launch, TwoProcessesTrainAConditionalPriorAsOneProcess) {
  test::TempDir dir;
  const auto vqvae = dir.file("vqvae");
  test::untrained_vqvae(vqvae);
  expect_ok(test::run_vqvae2("extract-codes --checkpoint " + vqvae + " --quiet --threads 1"));
  // Without dropout of either kind: their masks are drawn per rank, so with it the runs agree in
  // distribution only.
  const std::string flags = " --dropout 0 --condition-dropout 0 --level bottom --size small --channels 16 --res-channels 16 --condition-channels 16"
                            " --heads 2 --steps 3 --batch-size 8 --quiet --threads 1 --codes " + vqvae + "/codes";
  expect_ok(test::run_vqvae2("train-prior --out " + dir.file("one") + flags));
  expect_ok(test::run_vqvae2("launch --nproc 2 -- train-prior --out " + dir.file("two") + flags));
  const auto one = load<PriorKind>(dir.file("one"), torch::kCPU);
  const auto two = load<PriorKind>(dir.file("two"), torch::kCPU);
  expect_same_state(*one.model, *two.model, 2e-4);
}

TEST(Launch, ARunResumesWithAnotherNumberOfProcesses) {
  test::TempDir dir;
  const auto flags = kTiny + " --batch-size 16";
  expect_ok(test::run_vqvae2("train-vqvae --out " + dir.file("straight") + flags + " --steps 4"));
  expect_ok(test::run_vqvae2("launch --nproc 2 -- train-vqvae --out " + dir.file("split") + flags + " --steps 2"));
  expect_ok(test::run_vqvae2("train-vqvae --resume --out " + dir.file("split") + " --quiet --threads 1 --steps 4"));
  const auto straight = load<VQVAEKind>(dir.file("straight"), torch::kCPU);
  const auto split = load<VQVAEKind>(dir.file("split"), torch::kCPU);
  EXPECT_EQ(split.step, 4);
  expect_same_state(*straight.model, *split.model, 2e-4);
  // A batch that does not split over the processes is refused with advice.
  const auto odd = test::run_vqvae2("launch --nproc 2 -- train-vqvae --out " + dir.file("odd") + kTiny +
                                    " --batch-size 15 --steps 1");
  EXPECT_NE(odd.exit_code, 0);
  EXPECT_NE(odd.output.find("give a multiple of 2"), std::string::npos) << odd.output;
}

// The pids of `parent`'s children, by the RANK in their environment.
std::map<int, int> ranks_of(int parent) {
  std::map<int, int> ranks;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(stat)), {});
    const auto close = text.rfind(')');
    if (close == std::string::npos) continue;
    int ppid = 0;
    char state = 0;
    std::istringstream(text.substr(close + 2)) >> state >> ppid;
    if (ppid != parent) continue;
    std::ifstream environ(entry.path() / "environ");
    std::string env((std::istreambuf_iterator<char>(environ)), {});
    const auto at = env.find(std::string("\0RANK=", 6));
    if (at != std::string::npos) ranks[std::stoi(env.substr(at + 6))] = std::stoi(name);
  }
  return ranks;
}

// Waits for `pid` at most `seconds`; kills it (and fails) if it is still running then.
int wait_at_most(int pid, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "the launcher did not exit within " << seconds << " s";
  ::kill(pid, SIGKILL);
  return test::wait_for(pid);
}

// Starts a long two-process run and waits until both ranks are training.
int start_long_run(const test::TempDir& dir, const std::string& extra) {
  const auto pid = test::spawn_vqvae2("launch --nproc 2 --grace 3 -- train-vqvae --out " + dir.file("run") + kTiny +
                                          " --batch-size 16 --steps 100000 --dist-timeout 3" + extra,
                                      dir.file("log"));
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < until) {
    std::ifstream metrics(dir.file("run/metrics.jsonl"));
    std::string text((std::istreambuf_iterator<char>(metrics)), {});
    if (text.find("\"step\":3,") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pid;
}

TEST(Launch, AKilledRankStopsTheGroupWithAClearError) {
  test::TempDir dir;
  const auto launcher = start_long_run(dir, "");
  const auto ranks = ranks_of(launcher);
  ASSERT_EQ(ranks.size(), 2u) << test::read_text(dir.file("log"));
  ::kill(ranks.at(1), SIGKILL);
  EXPECT_NE(wait_at_most(launcher, 30), 0);
  const auto log = test::read_text(dir.file("log"));
  EXPECT_NE(log.find("rank 1 was killed by signal 9"), std::string::npos) << log;
  EXPECT_NE(log.find("Another rank has probably stopped"), std::string::npos) << log;  // rank 0's own error
}

TEST(Launch, AHungRankMakesTheOthersFailWithinTheTimeout) {
  test::TempDir dir;
  const auto launcher = start_long_run(dir, "");
  const auto ranks = ranks_of(launcher);
  ASSERT_EQ(ranks.size(), 2u) << test::read_text(dir.file("log"));
  ::kill(ranks.at(1), SIGSTOP);  // alive but silent
  EXPECT_NE(wait_at_most(launcher, 30), 0);
  const auto log = test::read_text(dir.file("log"));
  EXPECT_NE(log.find("rank 0 failed"), std::string::npos) << log;
  EXPECT_NE(log.find("rank 1 did not exit within --grace 3 s; killing it"), std::string::npos) << log;
}

TEST(Launch, ASignalStopsEveryRankAtTheSameStepWithOneCheckpointAndTheGroupResumesExactly) {
  test::TempDir dir;
  // No dead-code restarts: the straight run below has a short schedule, and restarts stop before
  // a schedule's end, so with them the two runs would differ by design, not by a fault.
  const std::string exact = " --dead-code-threshold 0";
  const auto launcher = start_long_run(dir, exact);
  ::kill(launcher, SIGTERM);
  EXPECT_EQ(wait_at_most(launcher, 30), 130);  // the CLI's "interrupted" exit code
  const auto stopped = load<VQVAEKind>(dir.file("run"), torch::kCPU);
  EXPECT_GE(stopped.step, 3);
  // The group resumes for two more steps and holds what one process trained straight to there.
  const auto steps = std::to_string(stopped.step + 2);
  expect_ok(test::run_vqvae2("launch --nproc 2 -- train-vqvae --resume --out " + dir.file("run") +
                             " --quiet --threads 1 --steps " + steps));
  expect_ok(test::run_vqvae2("train-vqvae --out " + dir.file("straight") + kTiny + exact + " --batch-size 16 --steps " +
                             steps));
  const auto resumed = load<VQVAEKind>(dir.file("run"), torch::kCPU);
  EXPECT_EQ(resumed.step, stopped.step + 2);
  expect_same_state(*load<VQVAEKind>(dir.file("straight"), torch::kCPU).model, *resumed.model, 2e-4);
}

}  // namespace
}  // namespace vqvae2
